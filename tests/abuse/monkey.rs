//! The monkey: thousands of random commands in the explorer (the fake model, in this process
//! and served), from a printed seed: open clips (short, long, corrupt, missing), seek, play,
//! select, zoom, every slider, methods and extensions, the score source, cancel, the dtype,
//! connect to a served model and kill it, reconnect, save and open workspaces, resize, hover
//! and keys. After each burst, once the work is done: no panic, nothing left in flight, the
//! cells shown are what the engine decodes for their keys (a sample of each burst), memory
//! bounded, and no frame over 16 ms.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use prunescope::engine::worker::{ClipSource, OpenClip, Request, Scoring, Worker};
use prunescope::engine::{ModelHost, RunMethod};
use prunescope::model::fake::FakeModel;
use prunescope::model::Precision;
use prunescope::prune::{Method, SegmentMode};
use prunescope::scores::{HeadReduce, Layers, ScoreSource};
use prunescope::ui::commands::Command;
use prunescope::ui::ExplorerApp;
use prunescope::util::SplitMix64 as Rng;

use crate::common::gui::{fake_app, harness};
use crate::common::{self, TempDir};
use crate::soak;

const BURSTS: usize = 40;
const PER_BURST: usize = 60;

/// The model here decodes the app's clip and settings as the engine does (the served fake says
/// the same): one worker, opening the clip again when the clip or the score source changed (it
/// lives in this process: one at a time keeps the memory measured the app's).
struct Reference {
    worker: Option<((PathBuf, ScoreSource), Worker)>,
    job: u64,
}

impl Reference {
    fn texts(
        &mut self,
        clip: &Path,
        runs: Vec<prunescope::engine::worker::KeyedRun>,
        params: &prunescope::prune::Params,
        decoding: &prunescope::engine::Decoding,
    ) -> HashMap<prunescope::engine::RunKey, String> {
        self.job += 1;
        let job = self.job;
        let want = (clip.to_path_buf(), params.source);
        if self.worker.as_ref().map(|w| &w.0) != Some(&want) {
            self.worker = None;
            let w = Worker::with_model(Box::new(FakeModel::new(Duration::ZERO))).unwrap();
            w.send(Request::OpenClip(OpenClip {
                job,
                clip: ClipSource::Path(clip.to_path_buf()),
                scoring: Scoring {
                    layers: Layers::All,
                    source: params.source,
                },
            }));
            soak::opened(&w, job).unwrap();
            self.worker = Some((want, w));
        }
        let worker = &self.worker.as_ref().expect("opened above").1;
        let (texts, finished) = soak::decode_all(worker, job, runs, (params, decoding), false);
        assert!(finished);
        texts
    }
}

/// Steps until the worker and the loader are done: a request that never ends is one left in
/// flight.
fn settle(h: &mut Harness<'_, ExplorerApp>, what: &str) {
    let t0 = Instant::now();
    loop {
        h.step();
        if !h.state().busy() && !h.state().loading() {
            // The clip's encoding and the grid's next request follow within a few frames,
            // unless the clip failed, the link is lost or a cancel stopped the grid.
            let t1 = Instant::now();
            while !h.state().settled() && t1.elapsed() < Duration::from_secs(3) {
                h.step();
                std::thread::sleep(Duration::from_millis(2));
                if h.state().busy() {
                    break;
                }
            }
            if !h.state().busy() {
                return;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "{what}: still busy after 90 s (a request left in flight); status {:?}; last commands {:?}",
            h.state().status_text(),
            h.state().command_log().iter().rev().take(8).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Everything the monkey can do, by weight.
struct Monkey<'a> {
    rng: Rng,
    clips: Vec<PathBuf>,
    t: &'a TempDir,
    workspaces: Vec<PathBuf>,
    pid_file: PathBuf,
    served: bool,
}

impl Monkey<'_> {
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.rng.below(xs.len())].clone()
    }

    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One random action on the harness: a command, a pointer move, a key, a resize.
    fn act(&mut self, h: &mut Harness<'_, ExplorerApp>) {
        let duration = 130.0;
        let r = self.rng.below(100);
        let c = match r {
            0..=3 => Command::OpenClip(self.pick(&self.clips.clone())),
            4..=9 => Command::Seek(self.unit() * duration),
            10..=11 => Command::PlayPause,
            12..=13 => Command::Step(self.unit() * 4.0 - 2.0),
            14..=16 => Command::Select(self.unit() * duration, self.unit() * duration),
            17 => Command::ClearSelection,
            18..=19 => Command::Zoom {
                factor: 0.25 + self.unit() * 2.0,
                anchor: Some(self.unit() * duration),
            },
            20..=21 => Command::Pan(self.unit() * 20.0 - 10.0),
            22 => Command::ZoomFit,
            23..=28 => Command::SetKeep((1.0 + self.unit() * 99.0).round()),
            29..=32 => Command::SetSegments(1 + self.rng.below(40)),
            33..=36 => Command::SetMethod(self.pick(&Method::ALL)),
            37 => Command::SetSegmentMode(self.pick(&[SegmentMode::Paper, SegmentMode::Exact])),
            38 => Command::SetSeed(self.rng.below(5) as u64),
            39 => Command::SetStopOnLoop(self.rng.below(2) == 0),
            40 => Command::SetGamma(self.unit() * 3.0),
            41 => Command::SetWindowSeconds(0.5 + self.unit() * 5.0),
            42 => Command::SetMergeThreshold(if self.rng.below(2) == 0 {
                None
            } else {
                Some(self.unit() * 2.0 - 1.0)
            }),
            43..=45 => Command::ShowExtension(self.pick(&Method::ALL), self.rng.below(2) == 0),
            46 => Command::ShowPeer(
                self.pick(&[RunMethod::FastV, RunMethod::PromptAware]),
                self.rng.below(2) == 0,
            ),
            47..=49 => Command::SetScoreSource(ScoreSource {
                layer: self.pick(&[None, Some(0), Some(1), Some(2), Some(3)]),
                head_reduce: self.pick(&[HeadReduce::Mean, HeadReduce::Max]),
            }),
            50..=53 => Command::CancelDecode,
            54 => Command::SetPrecision(self.pick(&[
                Precision::Auto,
                Precision::F32,
                Precision::Bf16,
                Precision::F16,
            ])),
            55..=56 => {
                self.served = true;
                let _ = std::fs::remove_file(&self.pid_file);
                Command::ConnectRemote(common::served_fake(0, Some(&self.pid_file)))
            }
            57..=58 if self.served => {
                // The connection drops: the server killed, whatever it was doing.
                if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
                    // Gone already when the link was dropped before.
                    let _ = std::process::Command::new("kill")
                        .args(["-9", pid.trim()])
                        .stderr(std::process::Stdio::null())
                        .status();
                }
                return;
            }
            59..=60 => Command::Reconnect,
            61..=63 => {
                let p = self
                    .t
                    .0
                    .join(format!("monkey-{}.prunescope.json", self.rng.below(4)));
                if !self.workspaces.contains(&p) {
                    self.workspaces.push(p.clone());
                }
                Command::SaveWorkspace(p)
            }
            64..=65 if !self.workspaces.is_empty() => {
                Command::OpenDocument(self.pick(&self.workspaces.clone()))
            }
            66 => Command::ToggleEmbedClips,
            67..=68 => {
                let keys: Vec<_> = h.state().grid_runs().0.iter().map(|(r, _)| r.key).collect();
                Command::PinCell(if keys.is_empty() || self.rng.below(3) == 0 {
                    None
                } else {
                    Some(self.pick(&keys))
                })
            }
            69 => Command::ToggleFollow,
            70 => Command::ToggleLoop,
            71 => Command::SetReference(
                self.pick(&[String::new(), "and so my fellow americans".to_string()]),
            ),
            72..=73 => {
                let size = egui::vec2(
                    700.0 + self.unit() as f32 * 1200.0,
                    500.0 + self.unit() as f32 * 700.0,
                );
                h.set_size(size);
                return;
            }
            74..=79 => {
                let pos = egui::pos2(self.unit() as f32 * 1400.0, self.unit() as f32 * 900.0);
                h.hover_at(pos);
                return;
            }
            80..=82 => {
                let key = self.pick(&[
                    egui::Key::Space,
                    egui::Key::ArrowLeft,
                    egui::Key::ArrowRight,
                    egui::Key::Escape,
                ]);
                h.key_press(key);
                return;
            }
            _ => return,
        };
        h.state_mut().command(c);
    }
}

/// Checks a sample of the cells shown against the engine.
fn check_cells(h: &Harness<'_, ExplorerApp>, reference: &mut Reference, rng: &mut Rng) -> usize {
    let Some((clip, _)) = h.state().clip_path() else {
        return 0;
    };
    // Whenever the clip has its scores, even with the grid half done (a cancel, a lost link):
    // what is shown must be right at every moment, not only at the end.
    if !h.state().encoded() || !clip.is_file() {
        return 0;
    }
    let (runs, params, decoding) = h.state().grid_runs();
    let shown: Vec<_> = runs.into_iter().filter(|(_, t)| t.is_some()).collect();
    if shown.is_empty() {
        return 0;
    }
    let sample: Vec<_> = (0..3)
        .map(|_| shown[rng.below(shown.len())].clone())
        .collect();
    let want = reference.texts(
        &clip,
        sample.iter().map(|(r, _)| r.clone()).collect(),
        &params,
        &decoding,
    );
    for (run, text) in &sample {
        assert_eq!(
            text.as_ref(),
            want.get(&run.key),
            "the cell {:?} at keep {} of {} ({}) shows another run's output; last commands {:?}",
            run.spec.method,
            run.spec.keep,
            clip.display(),
            h.state().title(),
            h.state()
                .command_log()
                .iter()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
        );
    }
    sample.len()
}

pub fn run(t: &TempDir, seed: u64) {
    println!("monkey seed {seed} (MONKEY_SEED={seed} replays it)");
    let mut clips = soak::clips(t);
    clips.truncate(5);
    let mut h = harness(fake_app(Some(clips[0].clone()), Duration::from_millis(1)));
    settle(&mut h, "the first clip");
    let mut monkey = Monkey {
        rng: Rng(seed),
        clips,
        t,
        workspaces: Vec::new(),
        pid_file: t.0.join("monkey-server.pid"),
        served: false,
    };
    let mut reference = Reference {
        worker: None,
        job: 0,
    };
    let mut check_rng = Rng(seed ^ 0x5eed);
    let me = std::process::id().to_string();
    let mut rss = Vec::new();
    let mut frames: Vec<f32> = Vec::new();
    let (mut checked, mut actions) = (0, 0);
    let mut slow = Vec::new();
    let t0 = Instant::now();
    for burst in 0..BURSTS {
        h.state_mut().clear_frame_ms();
        for _ in 0..PER_BURST {
            monkey.act(&mut h);
            h.step();
            actions += 1;
            if let Some(&ms) = h.state().frame_ms().last() {
                if ms >= 16.0 {
                    slow.push((ms, h.state().command_log().last().cloned()));
                }
            }
        }
        settle(&mut h, &format!("burst {burst}"));
        frames.extend_from_slice(h.state().frame_ms());
        checked += check_cells(&h, &mut reference, &mut check_rng);
        rss.push(soak::status_kb(&me, "VmRSS"));
        if std::env::var("MONKEY_TRACE").is_ok() {
            println!(
                "burst {burst}: {} | encoded {} | lost {:?} | status {:?}",
                h.state().title(),
                h.state().encoded(),
                h.state().lost_link(),
                h.state().status_text()
            );
        }
    }
    frames.sort_by(f32::total_cmp);
    let p = |q: f64| frames[((frames.len() - 1) as f64 * q) as usize];
    let worst = frames.last().copied().unwrap_or(0.0);
    let warm = rss[..5].iter().copied().max().unwrap_or(0);
    let top = rss.iter().copied().max().unwrap_or(0);
    println!(
        "monkey: {actions} actions in {BURSTS} bursts, {:.1} s; {checked} cells checked against the engine; frames {} (median {:.2} ms, p99 {:.2} ms, worst {worst:.2} ms); RSS {:.0} MB after 5 bursts, at most {:.0} MB, {:.0} MB at the end",
        t0.elapsed().as_secs_f64(),
        frames.len(),
        p(0.5),
        p(0.99),
        soak::mb(warm),
        soak::mb(top),
        soak::mb(*rss.last().unwrap()),
    );
    assert!(checked > 0, "no cell was ever checked");
    // The frame budget: 95 % of frames inside 16 ms (99 % in every run here, p99 6 to 15 ms).
    // A frame past it happens when the machine is loaded (CI's two cores run the worker, the
    // served model and this thread; the time is wall time), so the hard bound is 100 ms; the
    // frames over 16 ms and the command each applied are printed, and listed when this fails.
    println!("monkey: frames over 16 ms: {slow:?}");
    assert!(
        p(0.95) < 16.0 && worst < 100.0,
        "frames over 16 ms: {slow:?}"
    );
    // Bounded: the clips and models are the same ones over and over.
    assert!(
        top as f64 <= warm as f64 * 1.25 + 64.0 * 1024.0,
        "memory grew from {warm} kB to {top} kB: {rss:?}"
    );
}
