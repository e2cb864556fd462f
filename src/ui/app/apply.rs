//! The one command handler: every command of a frame, applied once at its end.

use std::time::Instant;

use super::ExplorerApp;
use crate::engine::worker::{ClipSource, OpenClip, Request, Scoring};
use crate::ui::commands::Command;
use crate::ui::logic::timeline::View;
use crate::ui::state::{OpenTiming, PathTarget, PathWindow};

impl ExplorerApp {
    pub(super) fn apply(&mut self, c: Command, ctx: Option<&egui::Context>) {
        if self.log.len() == super::LOG {
            self.log.remove(0);
        }
        self.log.push(c.clone());
        if c.changes_grid() {
            self.grid_dirty = true;
        }
        match c {
            Command::PickClip
            | Command::PickModel
            | Command::TypePath
            | Command::PickExportDir
            | Command::OpenClip(_)
            | Command::LoadModel(_)
            | Command::ConnectRemote(_)
            | Command::Reconnect
            | Command::UseLocalModel
            | Command::SetPrecision(_)
            | Command::Export(_)
            | Command::CancelDecode
            | Command::Quit => self.apply_file(c),
            Command::PickDocument => self.pick(PathTarget::Document),
            Command::PickRun => self.pick(PathTarget::Run),
            Command::PickWorkspaceSave => {
                if self.state.clip.is_none() {
                    self.error("no clip open: nothing to save");
                } else {
                    self.pick(PathTarget::SaveWorkspace);
                }
            }
            Command::OpenDocument(p) => self.read_document(p),
            Command::SaveWorkspace(p) => {
                self.state.windows.path = None;
                self.write_workspace(&p);
            }
            Command::ToggleEmbedClips => {
                self.state.settings.embed_clips = !self.state.settings.embed_clips;
            }
            Command::ComputeWithModel => self.send_document_clip(),
            Command::PinCell(k) => {
                self.state.pinned = k;
                // Every cell is now compared with the pinned one (or `full` again).
                self.views_dirty = true;
            }
            Command::ShowPage(_)
            | Command::SortCorpus(_)
            | Command::CompareSettings(..)
            | Command::OpenRunClip(_) => {
                match ctx.cloned().or_else(|| self.ctx_cell.get().cloned()) {
                    Some(ctx) => self.apply_corpus(c, &ctx),
                    // Before the first frame: textures need the window's context.
                    None => self.pending.push(c),
                }
            }
            Command::PlayPause
            | Command::PlaySelection
            | Command::ClearSelection
            | Command::Step(_)
            | Command::Seek(_)
            | Command::Select(..)
            | Command::Zoom { .. }
            | Command::Pan(_)
            | Command::SetView(_)
            | Command::ZoomFit
            | Command::ToggleLoop => self.apply_playback(c),
            Command::HoverLanes(h) => self.state.hover.lanes = h,
            Command::HoverGrid(h) => self.state.hover.grid = h,
            Command::ToggleHelp => self.state.windows.help = !self.state.windows.help,
            Command::EditPath(text) => {
                if let Some(w) = &mut self.state.windows.path {
                    w.text = text;
                }
            }
            Command::ClosePathWindow => self.state.windows.path = None,
            Command::TypeRemote => {
                let last = self.state.settings.recent_remotes.first().cloned();
                self.state.windows.remote = Some(last.unwrap_or_default());
            }
            Command::EditRemote(text) => self.state.windows.remote = Some(text),
            Command::CloseRemoteWindow => self.state.windows.remote = None,
            Command::EditExportDir(dir) => self.state.windows.export_dir = Some(dir),
            Command::CloseExportWindow => self.state.windows.export_dir = None,
            Command::SetScoreSource(s) => self.apply_score_source(s, ctx),
            setting => self.apply_setting(setting),
        }
        if let Some(ctx) = ctx {
            ctx.request_repaint();
        }
    }

    /// Files, the model and where it runs, exports, cancelling.
    fn apply_file(&mut self, c: Command) {
        match c {
            Command::PickClip => self.pick(PathTarget::Clip),
            Command::PickModel => self.pick(PathTarget::Model),
            Command::TypePath => {
                self.state.windows.path = Some(PathWindow {
                    target: PathTarget::Clip,
                    text: String::new(),
                    note: None,
                })
            }
            Command::PickExportDir => {
                let dir = self
                    .state
                    .clip
                    .as_ref()
                    .and_then(|c| c.path.parent())
                    .map(|p| p.join("prunescope-export").display().to_string())
                    .unwrap_or_else(|| "prunescope-export".into());
                self.state.windows.export_dir = Some(dir);
            }
            Command::OpenClip(path) => {
                self.state.windows.path = None;
                let job = self.new_job();
                self.host.cancel();
                self.state.decoding = None;
                self.info(format!("opening {}…", path.display()));
                self.state.open_timing = OpenTiming {
                    started: Some(Instant::now()),
                    ..OpenTiming::default()
                };
                self.host.send(Request::OpenClip(OpenClip {
                    job,
                    clip: ClipSource::Path(path.clone()),
                    scoring: Scoring::every_layer(),
                }));
                // The old clip stays on screen until the new one loads; answers for `job` count.
                self.state.pending_clip = Some((job, path));
            }
            Command::LoadModel(dir) => {
                self.state.windows.path = None;
                // A model directory is loaded here: leave a remote model first.
                if !self.attach_local() {
                    return;
                }
                self.state.model.loading = true;
                self.info(format!("loading model {}…", dir.display()));
                let options = crate::model::LoadOptions {
                    precision: self.state.settings.precision,
                    ..self.load.clone()
                };
                self.host.send(Request::LoadModel { dir, options });
            }
            Command::ConnectRemote(command) => {
                let command = command.trim().to_string();
                self.state.windows.remote = None;
                if command.is_empty() {
                    return;
                }
                self.state.settings.remember_remote(&command);
                self.attach_remote(&command);
                self.info(format!("connecting to `{command}`…"));
            }
            Command::Reconnect => match self.state.model.remote.clone() {
                Some(command) => self.apply_file(Command::ConnectRemote(command)),
                None => self.info("the model runs here: nothing to reconnect"),
            },
            Command::UseLocalModel => {
                let dir = (self.state.settings.last_model.clone())
                    .filter(|d| d.is_dir())
                    .or_else(crate::model::default_dir);
                match dir {
                    Some(d) if self.host.remote().is_some() => {
                        self.apply_file(Command::LoadModel(d))
                    }
                    Some(_) => self.info("the model already runs here"),
                    None => {
                        // Here, with no model until one is chosen.
                        if self.attach_local() {
                            self.state.model.loading = false;
                        }
                        self.error(
                            "no local model: File > Open model directory… (or drop one on the window)",
                        )
                    }
                }
            }
            Command::SetPrecision(p) => self.apply_precision(p),
            Command::Export(dir) => {
                self.state.windows.export_dir = None;
                match self.export(&dir) {
                    Ok(files) => {
                        self.info(format!("wrote {} files to {}", files.len(), dir.display()))
                    }
                    Err(e) => self.error(e.to_string()),
                }
            }
            Command::CancelDecode if self.state.decoding.as_ref().is_some_and(|d| d.running) => {
                self.host.cancel()
            }
            Command::Quit => self.quit = true,
            _ => {}
        }
    }

    /// Qwen2-Audio / AF3's dtype: reloads such a model in it.
    fn apply_precision(&mut self, p: crate::model::Precision) {
        if p == self.state.settings.precision {
            return;
        }
        self.state.settings.precision = p;
        if self.host.remote().is_some() {
            self.info(format!(
                "dtype {p}: for a model here; the remote model's dtype is its server's --dtype"
            ));
            return;
        }
        match (self.state.model.dir.clone(), self.state.model.prompted()) {
            (Some(dir), true) => self.apply_file(Command::LoadModel(dir)),
            _ => self.info(format!(
                "dtype {p}: for Qwen2-Audio / AF3 models (Whisper runs in f32)"
            )),
        }
    }

    /// Ranks by another layer's scores, reduced over heads another way: the lanes show them at
    /// once (the clip's encoding holds every layer).
    fn apply_score_source(&mut self, s: crate::scores::ScoreSource, ctx: Option<&egui::Context>) {
        if s == self.state.settings.source {
            return;
        }
        self.state.settings.source = s;
        let Some(scores) = self.state.clip.as_mut().and_then(|c| c.scores.as_mut()) else {
            return;
        };
        scores.set_source(&s);
        if let (Some(textures), Some(ctx)) = (&mut self.state.textures, ctx) {
            textures.set_scores(ctx, &scores.norm);
            textures.set_layers(ctx, &scores.layers, s.head_reduce);
        }
    }

    /// The controls' settings (the grid is asked for again after those it depends on).
    fn apply_setting(&mut self, c: Command) {
        let set = &mut self.state.settings;
        match c {
            Command::SetMethod(m) => set.method = m,
            Command::SetKeep(k) => set.keep_percent = k,
            Command::SetSegments(n) => set.segments = n,
            Command::SetSegmentMode(m) => set.mode = m,
            Command::SetSeed(s) => set.seed = s,
            Command::SetTail(t) => set.tail = t,
            Command::SetStopOnLoop(on) => set.stop_on_loop = on,
            Command::SetPrompt(p) => set.prompt = p,
            Command::SetGamma(g) => set.gamma = g,
            Command::SetWindowSeconds(w) => set.window_seconds = w,
            Command::SetMergeThreshold(t) => set.merge_threshold = t,
            Command::SetMergeWindow(w) => set.merge_window = w,
            Command::SetPivots(p) => set.pivots = p,
            Command::SetSampThreshold(t) => set.samp_threshold = t,
            Command::ShowExtension(m, on) => toggle(&mut set.extensions, m, on),
            Command::ShowPeer(m, on) => toggle(&mut set.peers, m, on),
            Command::SetFastVLayer(l) => set.fastv_layer = l,
            Command::SetDropLayer(l) => set.drop_layer = l,
            Command::SetReference(r) => {
                set.reference = r;
                self.views_dirty = true;
            }
            Command::ToggleFollow => set.follow = !set.follow,
            _ => {}
        }
    }

    /// Playback and the view.
    fn apply_playback(&mut self, c: Command) {
        if c == Command::ToggleLoop {
            self.state.settings.looping = !self.state.settings.looping;
        }
        let looping = self.state.settings.looping;
        let Some(clip) = &mut self.state.clip else {
            return;
        };
        let (pb, duration) = (&mut clip.playback, clip.duration);
        match c {
            Command::ToggleLoop => pb.looping = looping,
            Command::PlayPause => pb.toggle(),
            Command::PlaySelection => pb.play_selection(),
            Command::ClearSelection => pb.selection = None,
            Command::Step(dt) => pb.step(dt),
            Command::Seek(t) => pb.seek(t),
            Command::Select(a, b) => pb.select(a, b),
            Command::Zoom { factor, anchor } => {
                let anchor = anchor.unwrap_or(pb.position);
                clip.view.zoom(factor, anchor, duration);
            }
            Command::Pan(dt) => clip.view.pan(dt, duration),
            Command::SetView(v) => clip.view.set(v, duration),
            Command::ZoomFit => clip.view = View::full(duration),
            _ => {}
        }
        self.sync_audio();
    }
}

/// Puts `m` in `list` (at its end) or takes it out.
fn toggle<T: PartialEq>(list: &mut Vec<T>, m: T, on: bool) {
    list.retain(|x| *x != m);
    if on {
        list.push(m);
    }
}
