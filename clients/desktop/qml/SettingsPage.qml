// Settings: checked by the controller on save; what is wrong is shown under the form.
import QtQuick
import QtQuick.Controls
import QtQuick.Layouts

GridLayout {
    columns: 2; rowSpacing: 8; columnSpacing: 12
    property var current: controller.settingsMap
    Label { text: "Server URL"; Layout.leftMargin: 8; Layout.topMargin: 8 }
    TextField { id: server; text: current.server; Layout.fillWidth: true; Layout.rightMargin: 8; Layout.topMargin: 8 }
    Label { text: "API key"; Layout.leftMargin: 8 }
    TextField {
        id: apiKey; text: current.api_key; echoMode: TextInput.Password; Layout.fillWidth: true
        Layout.rightMargin: 8; placeholderText: "only if the server wants one"
    }
    Label { text: "Language"; Layout.leftMargin: 8 }
    TextField { id: language; text: current.language; placeholderText: "auto, en, de, …" }
    Label { text: "Task"; Layout.leftMargin: 8 }
    ComboBox {
        id: task; model: ["transcribe", "translate"]
        currentIndex: Math.max(0, model.indexOf(current.task))
    }
    Label { text: "End of speech after (ms)"; Layout.leftMargin: 8 }
    SpinBox { id: silence; from: 300; to: 2000; stepSize: 100; value: current.end_silence_ms; editable: true }
    Button {
        text: "Save"; Layout.leftMargin: 8
        onClicked: problem.text = controller.saveSettings({server: server.text, api_key: apiKey.text,
            language: language.text, task: task.currentText, end_silence_ms: silence.value})
    }
    Label { id: problem; color: "#c0392b"; wrapMode: Text.Wrap; Layout.fillWidth: true }
    Item { Layout.fillHeight: true; Layout.columnSpan: 2 }
}
