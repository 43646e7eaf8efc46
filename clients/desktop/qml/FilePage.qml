// File: choose a sound file, upload it to /transcribe with progress, show the text.
import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import QtQuick.Dialogs

ColumnLayout {
    spacing: 8
    FileDialog {
        id: picker
        title: "Choose a sound file"
        nameFilters: ["Audio (*.wav *.flac *.mp3 *.ogg *.opus *.webm *.m4a)", "All files (*)"]
        onAccepted: path.text = selectedFile
    }
    RowLayout {
        Layout.margins: 8
        TextField { id: path; Layout.fillWidth: true; placeholderText: "a sound file" }
        Button { text: "Browse…"; onClicked: picker.open() }
        Button {
            text: "Transcribe"; enabled: path.text.length > 0 && !controller.uploading
            onClicked: controller.transcribeFile(path.text)
        }
    }
    ProgressBar { Layout.fillWidth: true; Layout.margins: 8; value: controller.uploadProgress }
    ScrollView {
        Layout.fillWidth: true; Layout.fillHeight: true; Layout.margins: 8
        TextArea { readOnly: true; wrapMode: TextEdit.Wrap; text: controller.fileText; font.pixelSize: 15 }
    }
}
