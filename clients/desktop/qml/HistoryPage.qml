// History: every final of this session (live and files), with copy and export.
import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import QtQuick.Dialogs

ColumnLayout {
    spacing: 8
    FileDialog {
        id: saver
        property string format: "txt"
        fileMode: FileDialog.SaveFile
        nameFilters: format === "srt" ? ["SubRip (*.srt)"] : ["Text (*.txt)"]
        onAccepted: controller.exportHistory(selectedFile, format)
    }
    RowLayout {
        Layout.margins: 8
        Button { text: "Copy"; onClicked: controller.copyHistory() }
        Button { text: "Export TXT…"; onClicked: { saver.format = "txt"; saver.open() } }
        Button { text: "Export SRT…"; onClicked: { saver.format = "srt"; saver.open() } }
        Button { text: "Clear"; onClicked: controller.clearHistory() }
    }
    ListView {
        id: list
        Layout.fillWidth: true; Layout.fillHeight: true; Layout.margins: 8
        clip: true
        model: controller.historyModel
        delegate: RowLayout {
            width: list.width
            Label {
                text: model.source + "  " + model.start.toFixed(1) + "–" + model.end.toFixed(1) + " s"
                color: "#666"; Layout.preferredWidth: 260; elide: Text.ElideMiddle
            }
            Label { text: model.text; wrapMode: Text.Wrap; Layout.fillWidth: true }
        }
    }
}
