// The window: status bar, then four tabs (Live, File, History, Settings). Logic lives in `controller`.
import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import QtQuick.Dialogs

ApplicationWindow {
    id: root
    width: 900; height: 600
    visible: true
    title: "voxbus"
    property alias currentTab: tabs.currentIndex

    header: ToolBar {
        RowLayout {
            anchors.fill: parent; anchors.margins: 6; spacing: 12
            Rectangle {
                width: 12; height: 12; radius: 6
                color: controller.connectionState === "streaming" ? "#2e9d4a"
                     : controller.connectionState === "idle" ? "#8a8a8a" : "#d99a1e"
            }
            Label { text: controller.connectionState; font.bold: true }
            Label { text: controller.healthText; elide: Text.ElideRight; Layout.fillWidth: true }
            Label { text: controller.modelText; color: "#555" }
        }
    }

    footer: Label { text: controller.statusText; padding: 6; elide: Text.ElideRight }

    ColumnLayout {
        anchors.fill: parent
        TabBar {
            id: tabs
            Layout.fillWidth: true
            TabButton { text: "Live" }
            TabButton { text: "File" }
            TabButton { text: "History" }
            TabButton { text: "Settings" }
        }
        StackLayout {
            currentIndex: tabs.currentIndex
            Layout.fillWidth: true; Layout.fillHeight: true
            LivePage {}
            FilePage {}
            HistoryPage {}
            SettingsPage {}
        }
    }
}
