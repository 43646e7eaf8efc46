// Live: start/stop, level meter, scrolling waveform, partials (grey) replaced by finals.
import QtQuick
import QtQuick.Controls
import QtQuick.Layouts

ColumnLayout {
    spacing: 8
    RowLayout {
        Layout.margins: 8
        Button {
            text: controller.connectionState === "idle" ? "Start listening" : "Stop"
            onClicked: controller.connectionState === "idle" ? controller.startLive() : controller.stopLive()
        }
        Label { text: "level" }
        Rectangle {
            Layout.preferredWidth: 200; height: 12; color: "#e4e4e4"; radius: 3
            Rectangle {
                width: parent.width * controller.level; height: parent.height; radius: 3
                color: controller.level > 0.85 ? "#c0392b" : "#2e9d4a"
            }
        }
    }
    Canvas {
        id: wave
        Layout.fillWidth: true; Layout.preferredHeight: 80; Layout.leftMargin: 8; Layout.rightMargin: 8
        property var values: controller.waveformValues
        onValuesChanged: requestPaint()
        onPaint: {
            var ctx = getContext("2d");
            ctx.fillStyle = "#f4f6f8"; ctx.fillRect(0, 0, width, height);
            ctx.strokeStyle = "#3b73b9"; ctx.beginPath();
            var n = values.length, mid = height / 2;
            for (var i = 0; i < n; i++) {
                var x = i * width / n, h = values[i] * mid;
                ctx.moveTo(x, mid - h); ctx.lineTo(x, mid + h);
            }
            ctx.stroke();
        }
    }
    ListView {
        id: lineView
        objectName: "liveLines"
        Layout.fillWidth: true; Layout.fillHeight: true; Layout.margins: 8
        clip: true
        model: controller.lines
        delegate: Text {
            width: lineView.width; wrapMode: Text.Wrap; font.pixelSize: 16
            text: model.text
            color: model.final ? "#111" : "#999"
            font.italic: !model.final
        }
        onCountChanged: positionViewAtEnd()
    }
}
