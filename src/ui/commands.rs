//! The one table of user commands: menus, keyboard shortcuts and the help overlay all read it.

use egui::{Key, KeyboardShortcut, Modifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    OpenClip,
    OpenModel,
    OpenPath,
    PlayPause,
    PlaySelection,
    ClearSelection,
    StepBack,
    StepForward,
    ZoomIn,
    ZoomOut,
    ZoomFit,
    ToggleFollow,
    ToggleLoop,
    CancelDecode,
    Export,
    ToggleHelp,
    Quit,
}

/// Which menu a command sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Menu {
    File,
    Playback,
    View,
}

pub struct CommandInfo {
    pub command: Command,
    pub name: &'static str,
    pub menu: Menu,
    pub shortcut: Option<KeyboardShortcut>,
}

const fn key(k: Key) -> Option<KeyboardShortcut> {
    Some(KeyboardShortcut::new(Modifiers::NONE, k))
}

const fn cmd(k: Key) -> Option<KeyboardShortcut> {
    Some(KeyboardShortcut::new(Modifiers::COMMAND, k))
}

pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        command: Command::OpenClip,
        name: "Open clip…",
        menu: Menu::File,
        shortcut: cmd(Key::O),
    },
    CommandInfo {
        command: Command::OpenModel,
        name: "Open model directory…",
        menu: Menu::File,
        shortcut: cmd(Key::M),
    },
    CommandInfo {
        command: Command::OpenPath,
        name: "Open path…",
        menu: Menu::File,
        shortcut: cmd(Key::L),
    },
    CommandInfo {
        command: Command::Export,
        name: "Export PNG / CSV / JSON…",
        menu: Menu::File,
        shortcut: cmd(Key::E),
    },
    CommandInfo {
        command: Command::CancelDecode,
        name: "Cancel decoding",
        menu: Menu::File,
        shortcut: key(Key::Escape),
    },
    CommandInfo {
        command: Command::Quit,
        name: "Quit",
        menu: Menu::File,
        shortcut: cmd(Key::Q),
    },
    CommandInfo {
        command: Command::PlayPause,
        name: "Play / pause",
        menu: Menu::Playback,
        shortcut: key(Key::Space),
    },
    CommandInfo {
        command: Command::PlaySelection,
        name: "Play selection",
        menu: Menu::Playback,
        shortcut: key(Key::P),
    },
    CommandInfo {
        command: Command::ClearSelection,
        name: "Clear selection",
        menu: Menu::Playback,
        shortcut: key(Key::C),
    },
    CommandInfo {
        command: Command::ToggleLoop,
        name: "Loop",
        menu: Menu::Playback,
        shortcut: key(Key::L),
    },
    CommandInfo {
        command: Command::StepBack,
        name: "Step back 0.5 s",
        menu: Menu::Playback,
        shortcut: key(Key::ArrowLeft),
    },
    CommandInfo {
        command: Command::StepForward,
        name: "Step forward 0.5 s",
        menu: Menu::Playback,
        shortcut: key(Key::ArrowRight),
    },
    CommandInfo {
        command: Command::ZoomIn,
        name: "Zoom in",
        menu: Menu::View,
        shortcut: key(Key::Plus),
    },
    CommandInfo {
        command: Command::ZoomOut,
        name: "Zoom out",
        menu: Menu::View,
        shortcut: key(Key::Minus),
    },
    CommandInfo {
        command: Command::ZoomFit,
        name: "Zoom to fit",
        menu: Menu::View,
        shortcut: key(Key::Num0),
    },
    CommandInfo {
        command: Command::ToggleFollow,
        name: "Follow playhead",
        menu: Menu::View,
        shortcut: key(Key::F),
    },
    CommandInfo {
        command: Command::ToggleHelp,
        name: "Keyboard shortcuts",
        menu: Menu::View,
        shortcut: key(Key::F1),
    },
];

/// Commands whose shortcut was pressed this frame. Nothing while a text field has focus
/// (typing a path must not start playback).
pub fn pressed(ctx: &egui::Context) -> Vec<Command> {
    if ctx.text_edit_focused() {
        return Vec::new();
    }
    ctx.input_mut(|i| {
        COMMANDS
            .iter()
            .filter(|c| c.shortcut.is_some_and(|s| i.consume_shortcut(&s)))
            .map(|c| c.command)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_are_unique() {
        for (i, a) in COMMANDS.iter().enumerate() {
            for b in &COMMANDS[i + 1..] {
                assert!(
                    a.shortcut.is_none() || a.shortcut != b.shortcut,
                    "{} and {} share a shortcut",
                    a.name,
                    b.name
                );
                assert_ne!(a.command, b.command);
            }
        }
    }
}
