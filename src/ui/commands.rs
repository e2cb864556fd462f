//! The explorer's commands. Every action goes through the app's `apply`: menus, keyboard
//! shortcuts, drag and drop, recent files, buttons, every control and the lanes all *push* a
//! [`Command`] (with its data) during the frame, and the app runs them once at the end of it.
//! [`COMMANDS`] is the one table of the commands with a name: menus, shortcuts and the help
//! overlay read it.

use std::path::PathBuf;

use egui::{Key, KeyboardShortcut, Modifiers};

use super::logic::timeline::View;
use super::state::{GridHover, LanesHover, Page, PathTarget, SortBy};
use crate::engine::{RunKey, RunMethod, Tail};
use crate::model::Precision;
use crate::prune::{Method, SegmentMode};
use crate::scores::ScoreSource;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// The system file dialog (or the path window when there is none).
    PickClip,
    PickModel,
    /// The "open path" window.
    TypePath,
    /// The export window, with a folder beside the clip filled in.
    PickExportDir,
    OpenClip(PathBuf),
    LoadModel(PathBuf),
    /// The dialogs for an analysis or workspace, an eval run's folder, where to save the
    /// workspace.
    PickDocument,
    PickRun,
    PickWorkspaceSave,
    /// Opens an analysis, a workspace or an eval run (told apart by their content).
    OpenDocument(PathBuf),
    /// Writes the workspace to this file.
    SaveWorkspace(PathBuf),
    /// Saved workspaces carry clips under 20 MB (or never).
    ToggleEmbedClips,
    /// Sends a document's clip to the model loaded, which computes its missing cells (its own
    /// cells replace the document's when it is another model).
    ComputeWithModel,
    /// The clip's lanes and grid, or the eval run's table.
    ShowPage(Page),
    /// Sorts the corpus table (again on the same key: the other way).
    SortCorpus(SortBy),
    /// The two settings the corpus table compares (indices into the run's settings).
    CompareSettings(usize, usize),
    /// Opens a clip of the eval run (its index in the table) with its stored outputs.
    OpenRunClip(usize),
    /// The cell the lanes show while the pointer is over no cell (None: the slider's).
    PinCell(Option<RunKey>),
    /// The remote-model window, its command line filled in with the last one.
    TypeRemote,
    EditRemote(String),
    CloseRemoteWindow,
    /// Use the model served at the other end of this command line.
    ConnectRemote(String),
    /// Connect again to the remote model whose link was lost.
    Reconnect,
    /// Back to a model in this process: the last local model directory, or the default.
    UseLocalModel,
    /// Qwen2-Audio / AF3's dtype; reloads the current model in it.
    SetPrecision(Precision),
    /// Which layer's scores, reduced over heads how, every method ranks by.
    SetScoreSource(ScoreSource),
    /// Writes the exports into this folder.
    Export(PathBuf),
    PlayPause,
    PlaySelection,
    ClearSelection,
    /// Moves the playhead by this many seconds.
    Step(f64),
    Seek(f64),
    /// Selects the range between two times (any order).
    Select(f64, f64),
    /// Zooms by `factor` (< 1 zooms in) around `anchor` (None: the playhead).
    Zoom {
        factor: f64,
        anchor: Option<f64>,
    },
    /// Moves the view by this many seconds.
    Pan(f64),
    /// Shows this range (the lanes' own zoom and pan), clamped to the clip.
    SetView(View),
    ZoomFit,
    /// What the pointer is over in the lanes: the time (the cells highlight the words said
    /// then) and the words lane's word (the audio it read shows over the attention lane).
    HoverLanes(Option<LanesHover>),
    /// The grid cell under the pointer (its selection shows in the attention lane) and its word.
    HoverGrid(Option<GridHover>),
    /// The pruning method of the controls (the slider's cell).
    SetMethod(Method),
    /// The keep slider, in percent.
    SetKeep(f64),
    SetSegments(usize),
    SetSegmentMode(SegmentMode),
    SetSeed(u64),
    SetTail(Tail),
    SetStopOnLoop(bool),
    /// The prompt of Qwen2-Audio / AF3 (empty: the model's default).
    SetPrompt(String),
    SetGamma(f64),
    SetWindowSeconds(f64),
    /// Atome's merge threshold (None: down to the keep ratio).
    SetMergeThreshold(Option<f64>),
    /// LTBM's merge window (neighbours on each side).
    SetMergeWindow(usize),
    /// DART's pivot count.
    SetPivots(usize),
    /// Samp's merge threshold.
    SetSampThreshold(f64),
    /// Shows or hides an extension's row in the grid.
    ShowExtension(Method, bool),
    /// Shows or hides another paper's method's row in the grid.
    ShowPeer(RunMethod, bool),
    SetFastVLayer(usize),
    /// encoderdrop's layer (None: half the encoder's).
    SetDropLayer(Option<usize>),
    /// The reference transcript the cells' WER is computed against.
    SetReference(String),
    /// The text of the open-path window.
    EditPath(String),
    ClosePathWindow,
    /// The text of the export window.
    EditExportDir(String),
    CloseExportWindow,
    ToggleFollow,
    ToggleLoop,
    CancelDecode,
    ToggleHelp,
    Quit,
}

impl Command {
    /// Opens `path` as what `target` says.
    pub fn open(target: PathTarget, path: PathBuf) -> Command {
        match target {
            PathTarget::Clip => Command::OpenClip(path),
            PathTarget::Model => Command::LoadModel(path),
            PathTarget::Document | PathTarget::Run => Command::OpenDocument(path),
            PathTarget::SaveWorkspace => Command::SaveWorkspace(path),
        }
    }

    /// Whether the command changes a setting the grid's cells depend on (the grid is asked
    /// for again after it).
    pub fn changes_grid(&self) -> bool {
        matches!(
            self,
            Command::SetScoreSource(_)
                | Command::SetMethod(_)
                | Command::SetKeep(_)
                | Command::SetSegments(_)
                | Command::SetSegmentMode(_)
                | Command::SetSeed(_)
                | Command::SetTail(_)
                | Command::SetStopOnLoop(_)
                | Command::SetPrompt(_)
                | Command::SetGamma(_)
                | Command::SetWindowSeconds(_)
                | Command::SetMergeThreshold(_)
                | Command::SetMergeWindow(_)
                | Command::SetPivots(_)
                | Command::SetSampThreshold(_)
                | Command::ShowExtension(..)
                | Command::ShowPeer(..)
                | Command::SetFastVLayer(_)
                | Command::SetDropLayer(_)
        )
    }
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
        command: Command::PickClip,
        name: "Open clip…",
        menu: Menu::File,
        shortcut: cmd(Key::O),
    },
    CommandInfo {
        command: Command::PickDocument,
        name: "Open analysis or workspace…",
        menu: Menu::File,
        shortcut: cmd(Key::D),
    },
    CommandInfo {
        command: Command::PickRun,
        name: "Open evaluation run…",
        menu: Menu::File,
        shortcut: None,
    },
    CommandInfo {
        command: Command::PickWorkspaceSave,
        name: "Save workspace…",
        menu: Menu::File,
        shortcut: cmd(Key::S),
    },
    CommandInfo {
        command: Command::PickModel,
        name: "Open model directory…",
        menu: Menu::File,
        shortcut: cmd(Key::M),
    },
    CommandInfo {
        command: Command::TypePath,
        name: "Open path…",
        menu: Menu::File,
        shortcut: cmd(Key::L),
    },
    CommandInfo {
        command: Command::TypeRemote,
        name: "Connect to a remote model…",
        menu: Menu::File,
        shortcut: cmd(Key::R),
    },
    CommandInfo {
        command: Command::UseLocalModel,
        name: "Use the local model",
        menu: Menu::File,
        shortcut: None,
    },
    CommandInfo {
        command: Command::PickExportDir,
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
        command: Command::Step(-0.5),
        name: "Step back 0.5 s",
        menu: Menu::Playback,
        shortcut: key(Key::ArrowLeft),
    },
    CommandInfo {
        command: Command::Step(0.5),
        name: "Step forward 0.5 s",
        menu: Menu::Playback,
        shortcut: key(Key::ArrowRight),
    },
    CommandInfo {
        command: Command::Zoom {
            factor: 0.5,
            anchor: None,
        },
        name: "Zoom in",
        menu: Menu::View,
        shortcut: key(Key::Plus),
    },
    CommandInfo {
        command: Command::Zoom {
            factor: 2.0,
            anchor: None,
        },
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
            .map(|c| c.command.clone())
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
