//! Whole-app tests of the explorer with the fake model (no weights needed), plus one frame-time
//! measurement with the real model when it is on disk. Widgets are found by role and label.
//! Image snapshots (tests/snapshots) need a wgpu adapter; lavapipe (mesa-vulkan-drivers) works.
#![allow(clippy::too_many_lines)]
#![cfg(feature = "gui")]

mod common;
use common::gui::{fake_app, harness, model_app};
#[path = "ui/documents.rs"]
mod documents;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use prunescope::model::fake::FakeModel;
use prunescope::ui::commands::Command;
use prunescope::ui::{ExplorerApp, ModelSource, Settings, Startup};

fn jfk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/jfk.wav")
}

/// [`harness`] for the toy models' random weights, which say random bytes: U+FFFD, which the
/// test harness's one font lacks (the app's default policy draws a box; the harness would
/// panic).
fn random_weights_harness(app: ExplorerApp) -> Harness<'static, ExplorerApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .with_max_steps(1000)
        .allow_missing_glyphs()
        .build_ui_state(|ui, app: &mut ExplorerApp| app.show(ui), app)
}

/// Steps the harness (real time passes, so the worker gets on) until `done` or the timeout.
fn step_until(
    h: &mut Harness<'_, ExplorerApp>,
    what: &str,
    timeout: Duration,
    done: impl Fn(&mut Harness<'_, ExplorerApp>) -> bool,
) {
    let t0 = Instant::now();
    loop {
        h.step();
        if done(h) {
            return;
        }
        assert!(
            t0.elapsed() < timeout,
            "timed out waiting for {what}; status: {:?}",
            h.state().status_text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn has_label(h: &Harness<'_, ExplorerApp>, label: &str) -> bool {
    h.query_by_label(label).is_some()
}

#[test]
fn sliders_update_kept_and_segment_counts() {
    let mut h = harness(fake_app(Some(jfk()), Duration::from_millis(1)));
    step_until(&mut h, "the clip's scores", Duration::from_secs(30), |h| {
        h.state().encoded()
    });
    h.step();
    // jfk: 550 tokens; keep 25 % -> K = 138; paper segmentwise, S = 10 -> 13 per segment.
    assert!(has_label(&h, "Kept 130 of 550 tokens"));
    assert!(has_label(&h, "Segments: 10"));

    h.get_by_role_and_label(Role::Slider, "S")
        .set_value_accesskit(20.0);
    // The slider's command applies at the end of the frame that saw the move; the next frame
    // shows it: floor(138 / 20) * 20.
    h.step();
    h.step();
    assert!(has_label(&h, "Kept 120 of 550 tokens"), "S slider moved");
    assert!(has_label(&h, "Segments: 20"));

    h.get_by_role_and_label(Role::Slider, "Keep")
        .set_value_accesskit(50.0);
    h.step();
    h.step();
    // K = 275, floor(275 / 20) = 13 per segment.
    assert!(has_label(&h, "Kept 260 of 550 tokens"), "keep slider moved");
    assert_eq!(h.state().settings().keep_percent, 50.0);
    assert_eq!(h.state().settings().segments, 20);
}

#[test]
fn output_grid_fills_in() {
    let mut h = harness(fake_app(Some(jfk()), Duration::from_millis(1)));
    step_until(&mut h, "the grid", Duration::from_secs(60), |h| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() > 0
    });
    h.step();
    // 7 rows: vanilla and full once, 5 methods x 3 ratios (the slider's 25 % is one of them).
    assert_eq!(h.state().result_count(), 2 + 5 * 3);
    assert!(
        h.query_all_by_label_contains("And so my fellow americans ask not")
            .count()
            >= 2
    );
    assert_eq!(h.query_all_by_label_contains("K 550 ").count(), 2);
    let status = h.state().status_text().unwrap_or_default().to_string();
    assert!(
        status.starts_with("decoded 17 setting(s)"),
        "status: {status}"
    );
}

#[test]
fn looped_cells_are_marked_and_the_guard_cuts_them() {
    // A fake that loops whenever it missed a word (pruned cells; vanilla and full hear all).
    let mut model = FakeModel::new(Duration::from_millis(1));
    model.loop_below = Some(0.999);
    let mut h = harness(model_app(Some(jfk()), Box::new(model)));
    let filled = |h: &mut Harness<'_, ExplorerApp>| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() >= 17
    };
    step_until(&mut h, "the grid", Duration::from_secs(60), filled);
    h.step();
    let plain = h.query_all_by_label("loop").count();
    assert!(plain >= 1, "no looped cell is marked");
    assert_eq!(h.query_all_by_label("loop · cut").count(), 0);

    h.get_by_role_and_label(Role::CheckBox, "Stop on loop")
        .click();
    h.step();
    assert!(h.state().settings().stop_on_loop);
    step_until(&mut h, "the guarded grid", Duration::from_secs(60), |h| {
        filled(h) && h.query_all_by_label("loop · cut").count() > 0
    });
    h.step();
    // The same cells loop; those the guard caught say so (one that reached the fake's cap
    // before repeating enough stays a plain loop).
    let cut = h.query_all_by_label("loop · cut").count();
    assert!(cut >= 1);
    assert_eq!(cut + h.query_all_by_label("loop").count(), plain);
}

#[test]
fn slider_move_cancels_stale_work_and_queues_the_new_setting() {
    // Slow decoding so the first job is still running when the slider moves.
    let mut h = harness(fake_app(Some(jfk()), Duration::from_millis(15)));
    step_until(&mut h, "decoding to start", Duration::from_secs(30), |h| {
        h.state().busy() && h.state().encoded()
    });
    h.get_by_role_and_label(Role::Slider, "Keep")
        .set_value_accesskit(37.0);
    h.step();
    step_until(&mut h, "the 37 % column", Duration::from_secs(60), |h| {
        h.query_by_label("keep 37 % (slider)").is_some() && !h.state().busy()
    });
    // 17 cells + 6 of the new column (5 methods + segmentwise at 37 % is one of them).
    assert_eq!(h.state().result_count(), 17 + 5);
}

#[test]
fn corrupt_file_shows_the_error_and_the_app_goes_on() {
    let dir = prunescope::util::TempDir::new("ui").unwrap();
    let bad = dir
        .file(
            "corrupt.wav",
            b"RIFF\x10\x00\x00\x00WAVEfmt this is not audio at all",
        )
        .unwrap();
    let mut h = harness(fake_app(Some(bad.clone()), Duration::from_millis(1)));
    step_until(&mut h, "the error", Duration::from_secs(20), |h| {
        h.state()
            .status_text()
            .is_some_and(|s| s.contains("corrupt.wav"))
    });
    h.step();
    let status = h.state().status_text().unwrap_or_default().to_string();
    assert!(h.query_by_label(&status).is_some(), "shown: {status}");
    // Still usable: a good clip opens afterwards.
    h.state_mut().open_clip(jfk());
    step_until(&mut h, "the good clip", Duration::from_secs(30), |h| {
        h.state().encoded()
    });
    // A bad model directory is a message too.
    h.state_mut().load_model(dir.path().join("no-such-model"));
    step_until(&mut h, "the model error", Duration::from_secs(20), |h| {
        h.state()
            .status_text()
            .is_some_and(|s| s.contains("cannot load model"))
    });
}

#[test]
fn keyboard_plays_and_steps_but_not_while_typing() {
    let mut h = harness(fake_app(Some(jfk()), Duration::from_millis(1)));
    step_until(&mut h, "the clip", Duration::from_secs(30), |h| {
        h.state().encoded()
    });
    h.key_press(egui::Key::ArrowRight);
    h.step();
    assert!(h.query_by_label("0.50 / 11.00 s").is_some());
    // Typing a space into the reference field must not start playback.
    let field = h.get_by_role(Role::MultilineTextInput);
    field.focus();
    h.step();
    h.key_press(egui::Key::ArrowRight);
    h.step();
    assert!(h.query_by_label("0.50 / 11.00 s").is_some());
}

/// Steps until the grid is complete, then returns the lanes-only harness for snapshots.
fn lanes_harness(settings: Settings) -> Harness<'static, ExplorerApp> {
    let app = ExplorerApp::new(
        settings,
        Startup {
            document: None,
            clip: Some(jfk()),
            model: ModelSource::Given(Box::new(FakeModel::new(Duration::ZERO))),
            audio: false,
            load: Default::default(),
        },
    );
    let mut h = Harness::builder()
        .with_size(egui::vec2(1000.0, 520.0))
        .build_ui_state(|ui, app: &mut ExplorerApp| app.show_lanes(ui), app);
    // The whole grid in, so the words lane shows the slider cell's words whatever the timing.
    let t0 = Instant::now();
    while !(h.state().encoded() && !h.state().busy() && h.state().result_count() >= 17) {
        h.step();
        assert!(t0.elapsed() < Duration::from_secs(30), "no grid");
        std::thread::sleep(Duration::from_millis(5));
    }
    h.state_mut().seek(3.0);
    h.step();
    h.step();
    h
}

#[test]
fn snapshot_lanes_segmentwise() {
    let mut h = lanes_harness(Settings::default());
    h.snapshot("lanes_segmentwise_25");
}

#[test]
fn snapshot_lanes_topk_with_selection() {
    let mut h = lanes_harness(Settings {
        method: prunescope::prune::Method::TopK,
        keep_percent: 10.0,
        ..Settings::default()
    });
    h.state_mut().select_range(4.0, 6.5);
    h.step();
    h.snapshot("lanes_topk_10_selection");
}

/// Atome's merged groups of neighbours show as shaded spans behind their bars.
#[test]
fn snapshot_lanes_atome_groups() {
    let mut h = lanes_harness(Settings {
        method: prunescope::prune::Method::Atome,
        keep_percent: 25.0,
        ..Settings::default()
    });
    h.snapshot("lanes_atome_25");
}

fn frame_stats(ms: &[f32]) -> (f32, f32, f32) {
    let mut v = ms.to_vec();
    v.sort_by(f32::total_cmp);
    let pick = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    (pick(0.5), pick(0.95), *v.last().unwrap_or(&0.0))
}

/// Frames of the app while the worker decodes the grid: median, p95 and worst CPU time of
/// `show` (the UI thread's own work; rendering is the GPU's).
fn measure_while_decoding(app: ExplorerApp, what: &str) -> (f32, f32, f32) {
    let mut h = harness(app);
    step_until(&mut h, "scores", Duration::from_secs(120), |h| {
        h.state().encoded()
    });
    h.state_mut().clear_frame_ms();
    let t0 = Instant::now();
    let mut frames = 0;
    while (h.state().busy() || frames < 30) && t0.elapsed() < Duration::from_secs(120) {
        h.step();
        frames += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let (p50, p95, max) = frame_stats(h.state().frame_ms());
    println!(
        "frame time with the worker decoding ({what}): median {p50:.2} ms, p95 {p95:.2} ms, worst {max:.2} ms over {frames} frames"
    );
    // What the status bar says: from opening the clip to the slider's cell and the whole grid.
    let (first, grid) = h.state().open_timings();
    println!(
        "opening the clip ({what}): slider cell after {first:?} ms, whole grid after {grid:?} ms"
    );
    assert!(
        first.is_some() && grid.is_some() && first <= grid,
        "{first:?} {grid:?}"
    );
    (p50, p95, max)
}

#[test]
fn frame_time_stays_under_16_ms_while_decoding_fake() {
    let (p50, p95, _) = measure_while_decoding(
        fake_app(Some(jfk()), Duration::from_millis(5)),
        "fake model",
    );
    assert!(p50 < 16.0 && p95 < 16.0, "p50 {p50} ms, p95 {p95} ms");
}

#[test]
fn frame_time_stays_under_16_ms_while_decoding_whisper() {
    let Some(dir) = prunescope::ui::default_model_dir() else {
        eprintln!("skipped: no model on disk (`cargo run -- fetch`)");
        return;
    };
    let app = ExplorerApp::new(
        Settings::default(),
        Startup {
            document: None,
            clip: Some(jfk()),
            model: ModelSource::Dir(dir),
            audio: false,
            load: Default::default(),
        },
    );
    let (p50, _, _) = measure_while_decoding(app, "whisper-tiny.en");
    // The median is the UI's own cost; single frames can lose the core to the decoder's
    // threads on a 2-core machine, which no UI code can prevent.
    assert!(p50 < 16.0, "median {p50} ms");
}

#[test]
fn prompted_model_takes_a_prompt_and_no_tail() {
    // The toy Qwen2-Audio checkpoint (random weights): reads the first 2 s window of jfk.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alm/qwen2-audio-tiny");
    let mut model =
        prunescope::model::alm::Alm::load(&dir, &candle_core::Device::Cpu, candle_core::DType::F32)
            .expect("toy model");
    model.options.max_new_tokens = 3;
    let app = model_app(Some(jfk()), Box::new(model));
    let mut h = random_weights_harness(app);
    step_until(&mut h, "the grid", Duration::from_secs(60), |h| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() == 17
    });
    h.step();
    // 2 s window pooled to 50 tokens; keep 25 % -> K = 13, paper segmentwise S = 10 -> 10.
    assert!(has_label(&h, "Kept 10 of 50 tokens"));
    assert!(h
        .get_by_role_and_label(Role::Slider, "Silence tail")
        .accesskit_node()
        .is_disabled());
    let prompt = h.get_by_role(Role::TextInput);
    assert!(!prompt.accesskit_node().is_disabled());
    prompt.focus();
    h.step();
    h.get_by_role(Role::TextInput).type_text("What is said?");
    h.step();
    assert_eq!(h.state().settings().prompt, "What is said?");
    // A new prompt invalidates every cell: the grid empties in the frame that saw the text and
    // fills in again.
    let count = h.state().result_count();
    assert!(count < 17, "{count} cells kept across a prompt change");
    step_until(
        &mut h,
        "the new prompt's grid",
        Duration::from_secs(60),
        |h| !h.state().busy() && h.state().result_count() == 17,
    );
}

#[test]
fn model_dtype_reloads_a_prompted_model_and_shows_in_the_title_bar() {
    // The toy Qwen2-Audio checkpoint from its directory, the saved dtype bf16.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alm/qwen2-audio-tiny");
    let settings = Settings {
        precision: prunescope::model::Precision::Bf16,
        ..Settings::default()
    };
    let app = ExplorerApp::new(
        settings,
        Startup {
            document: None,
            clip: Some(jfk()),
            model: ModelSource::Dir(dir),
            audio: false,
            load: Default::default(),
        },
    );
    let mut h = random_weights_harness(app);
    step_until(&mut h, "the bf16 model", Duration::from_secs(60), |h| {
        h.state().encoded() && !h.state().busy()
    });
    let label = h.state().model_label().unwrap().to_string();
    assert!(label.ends_with("cpu bf16"), "{label}");
    assert!(has_label(&h, &label), "the title bar shows {label}");
    // Choosing f32 reloads it and decodes every cell again; the frame that sees the f32 model
    // shows none of the cells computed in bf16.
    let asked = h.state().decode_requests();
    h.state_mut()
        .set_precision(prunescope::model::Precision::F32);
    step_until(&mut h, "the f32 model", Duration::from_secs(60), |h| {
        h.state()
            .model_label()
            .is_some_and(|l| l.ends_with("cpu f32"))
    });
    assert_eq!(h.state().result_count(), 0, "bf16 cells shown for f32");
    step_until(&mut h, "the f32 grid", Duration::from_secs(60), |h| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() == 17
    });
    assert!(
        h.state().decode_requests() > asked,
        "nothing decoded in f32"
    );
    assert_eq!(
        h.state().settings().precision,
        prunescope::model::Precision::F32
    );
}

/// Another model: none of the old model's cells is shown, and the whole grid is decoded again.
#[test]
fn switching_the_model_decodes_every_cell_again() {
    let mut h = random_weights_harness(fake_app(Some(jfk()), Duration::from_millis(1)));
    step_until(&mut h, "the fake's grid", Duration::from_secs(30), |h| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() == 17
    });
    let fake = h.state().model_label().unwrap().to_string();
    let asked = h.state().decode_requests();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alm/qwen2-audio-tiny");
    h.state_mut().load_model(dir);
    step_until(
        &mut h,
        "the toy Qwen2-Audio",
        Duration::from_secs(60),
        |h| h.state().model_label().is_some_and(|l| l != fake),
    );
    assert_eq!(h.state().result_count(), 0, "the fake's cells shown");
    step_until(&mut h, "its grid", Duration::from_secs(60), |h| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() == 17
    });
    assert!(h.state().decode_requests() > asked);
}

/// A slider move is one command and one decode request, and nothing more is asked while the
/// new cells come in.
#[test]
fn a_slider_move_is_one_command_and_one_request() {
    let mut h = decoded_grid();
    h.step();
    let (applied, asked) = (
        h.state().command_log().to_vec(),
        h.state().decode_requests(),
    );
    h.get_by_role_and_label(Role::Slider, "Keep")
        .set_value_accesskit(37.0);
    h.step();
    let n = (applied.len() + 1).min(64);
    let log = h.state().command_log();
    assert_eq!(log.len(), n, "{:?}", &log[applied.len().min(63)..]);
    assert_eq!(log.last(), Some(&Command::SetKeep(37.0)));
    assert_eq!(h.state().decode_requests(), asked + 1);
    step_until(&mut h, "the 37 % column", Duration::from_secs(30), |h| {
        !h.state().busy() && h.state().result_count() == 17 + 5
    });
    assert_eq!(h.state().decode_requests(), asked + 1);
    assert_eq!(h.state().command_log().len(), n, "commands while decoding");
}

#[test]
fn whisper_greys_out_the_reduced_dtypes() {
    let mut h = harness(fake_app(Some(jfk()), Duration::from_millis(1)));
    step_until(&mut h, "the fake model", Duration::from_secs(20), |h| {
        h.state().model_label().is_some()
    });
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Model dtype").hover();
    h.run();
    for (name, enabled) in [
        ("bf16", false),
        ("f16", false),
        ("f32", true),
        ("auto (f32 on the CPU, bf16 on a GPU)", true),
    ] {
        let node = h.get_by_label(name);
        assert_eq!(!node.accesskit_node().is_disabled(), enabled, "{name}");
    }
}

#[test]
fn score_source_reranks_without_encoding_again() {
    let mut h = harness(fake_app(Some(jfk()), Duration::from_millis(1)));
    step_until(&mut h, "the grid", Duration::from_secs(30), |h| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() == 17
    });
    let paper = h.state().shown_scores().unwrap().to_vec();
    h.state_mut()
        .set_score_source(prunescope::scores::ScoreSource {
            layer: Some(0),
            head_reduce: prunescope::scores::HeadReduce::Max,
        });
    h.step();
    let layer0 = h.state().shown_scores().unwrap().to_vec();
    assert_eq!(layer0.len(), paper.len());
    assert_ne!(layer0, paper, "layer 0's max scores are shown");
    // The cells that rank by score are decoded again (12 of the 17: all but vanilla, full and
    // random's three); the results cache keeps both sources' cells.
    step_until(&mut h, "the re-ranked grid", Duration::from_secs(30), |h| {
        !h.state().busy() && h.state().result_count() == 17 + 12
    });
    assert_eq!(h.state().settings().source.layer, Some(0));
    // Back to the paper's source: the first scores again.
    h.state_mut()
        .set_score_source(prunescope::scores::ScoreSource::default());
    h.step();
    assert_eq!(h.state().shown_scores().unwrap(), &paper[..]);
    // Its cells are all cached: nothing to decode.
    h.step();
    assert!(!h.state().busy());
    assert_eq!(h.state().result_count(), 29);
}

/// The fake model's whole grid of jfk, decoded.
fn decoded_grid() -> Harness<'static, ExplorerApp> {
    let mut h = harness(fake_app(Some(jfk()), Duration::from_millis(1)));
    step_until(&mut h, "the grid", Duration::from_secs(30), |h| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() == 17
    });
    h
}

/// Presses and releases the primary button at `pos`.
fn click_at(h: &mut Harness<'_, ExplorerApp>, pos: egui::Pos2) {
    h.hover_at(pos);
    h.step();
    h.drag_at(pos);
    h.step();
    h.event(egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    h.step();
    h.step();
}

#[test]
fn hovering_a_word_shows_the_audio_it_read_and_clicking_it_plays_from_there() {
    let mut h = decoded_grid();
    // The first cell with the whole transcript (vanilla, keep 50 %): a word in its middle.
    let rect = h
        .get_all_by_label_contains("And so my fellow americans ask not")
        .next()
        .unwrap()
        .rect();
    let pos = egui::pos2(rect.center().x, rect.top() + 8.0);
    h.hover_at(pos);
    h.step();
    h.step();
    let (word, start, end, overlay) = h.state().hovered_word().expect("a word is hovered");
    let overlay = overlay.to_vec();
    assert!(
        !word.is_empty() && start > 0.0 && end > start,
        "{word} {start} {end}"
    );
    // Its attention lies on the hovered cell's kept tokens only, and on some of them.
    let kept = h.state().hovered_cell_kept().unwrap().to_vec();
    assert!(overlay.iter().any(|&x| x > 0.0));
    for (t, &x) in overlay.iter().enumerate() {
        assert!(
            x == 0.0 || kept.contains(&t),
            "token {t} is not kept but has {x}"
        );
    }
    // The attention lane shows that cell's kept tokens; the words lane its words.
    assert_eq!(h.state().lane_kept(), kept);
    let lane = h.state().words_lane();
    assert!(lane.contains(&word), "{word} in {lane:?}");
    assert_eq!(lane.first().map(String::as_str), Some("and"));
    // The attention lane's frames stay cheap with a word hovered and every lane on.
    h.state_mut().clear_frame_ms();
    for i in 0..60 {
        h.hover_at(pos + egui::vec2((i % 3) as f32, 0.0));
        h.step();
    }
    let (p50, p95, max) = frame_stats(h.state().frame_ms());
    println!(
        "frame time with a word hovered: median {p50:.2} ms, p95 {p95:.2} ms, worst {max:.2} ms"
    );
    // The budget is a frame (16 ms); the figure printed above is the measurement (CI's machine
    // is shared, so a tighter bound here would test the neighbours, not the lane).
    assert!(p50 < 16.0 && p95 < 16.0, "median {p50} ms, p95 {p95} ms");
    // A click on the word plays from its start.
    click_at(&mut h, pos);
    let at = h.state().playhead().unwrap();
    assert!(
        (at - start).abs() < 1e-9,
        "playhead {at}, word start {start}"
    );
}

#[test]
fn clicking_a_layer_row_ranks_by_that_layer_and_changes_the_kept_set() {
    let mut h = decoded_grid();
    let before = h.state().lane_kept();
    assert!(!before.is_empty());
    assert_eq!(h.state().settings().source.layer, None);
    // The layer lane sits right of its label; its top row is layer 0.
    let label = h.get_by_label("layers").rect();
    click_at(&mut h, egui::pos2(label.right() + 200.0, label.top() + 4.0));
    assert_eq!(h.state().settings().source.layer, Some(0));
    let after = h.state().lane_kept();
    assert_eq!(after.len(), before.len(), "the same budget");
    assert_ne!(after, before, "layer 0's scores keep other tokens");
    // The grid's score-ranked cells decode again under the new source.
    step_until(&mut h, "the re-ranked grid", Duration::from_secs(30), |h| {
        !h.state().busy() && h.state().result_count() == 17 + 12
    });
}

#[test]
fn peers_join_the_grid_where_the_model_can_run_them() {
    let mut h = decoded_grid();
    // The fake model, like Whisper, has no prompt: promptaware is greyed out, fastv is not.
    let pa = h.get_by_label("promptaware");
    assert!(
        pa.accesskit_node().is_disabled(),
        "promptaware needs a prompted model"
    );
    h.get_by_label("fastv").click();
    h.step();
    assert_eq!(
        h.state().settings().peers,
        vec![prunescope::engine::RunMethod::FastV]
    );
    // Its three cells are decoded and shown in a new row.
    step_until(&mut h, "the fastv row", Duration::from_secs(30), |h| {
        !h.state().busy() && h.state().result_count() == 17 + 3
    });
    // The checkbox and the row's name.
    assert_eq!(h.query_all_by_label("fastv").count(), 2);
}

/// A two-minute clip (jfk eleven times over) with its whole grid decoded by the fake model; then
/// the keep slider is dragged across the ratios, back and forth, as a user would: every frame's
/// CPU time (the UI's own work) stays under 16 ms, including the frames where the slider's
/// column comes and goes and every cell's text is laid out again.
#[test]
fn dragging_the_keep_slider_on_a_two_minute_clip_keeps_frames_under_16_ms() {
    let dir = prunescope::util::TempDir::new("ui-long").unwrap();
    let jfk = prunescope::audio::load(&jfk()).unwrap();
    let mut samples = Vec::new();
    while samples.len() < 120 * 16_000 {
        samples.extend_from_slice(&jfk.samples);
    }
    let wav = common::wav_bytes(1, 1, 16_000, 16, &common::pcm16(&samples), None);
    let clip = dir.file("two_minutes.wav", &wav).unwrap();
    // A window of real speech says about three times jfk's words.
    let mut model = FakeModel::new(Duration::from_micros(100));
    model.say_times = 3;
    let mut h = harness(model_app(Some(clip), Box::new(model)));
    step_until(&mut h, "the grid", Duration::from_secs(120), |h| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() == 17
    });
    let slider = h.get_all_by_role(Role::Slider).next().unwrap().rect();
    let y = slider.center().y;
    h.state_mut().clear_frame_ms();
    h.drag_at(egui::pos2(slider.left() + 0.24 * slider.width(), y));
    h.step();
    let mut xs: Vec<f32> = (24..70).map(|p| p as f32 / 100.0).collect();
    xs.extend((30..70).rev().map(|p| p as f32 / 100.0));
    for f in xs {
        h.hover_at(egui::pos2(slider.left() + f * slider.width(), y));
        h.step();
    }
    h.event(egui::Event::PointerButton {
        pos: egui::pos2(slider.left() + 0.3 * slider.width(), y),
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    h.step();
    let (p50, p95, max) = frame_stats(h.state().frame_ms());
    println!(
        "frame time while dragging the keep slider on a two-minute clip: median {p50:.2} ms, p95 {p95:.2} ms, worst {max:.2} ms over {} frames",
        h.state().frame_ms().len()
    );
    assert!(max < 16.0, "worst frame {max} ms");
}

/// File > Open path (Ctrl+L): the path field takes the keyboard at once, and Enter opens what
/// was typed.
#[test]
fn open_path_takes_typing_and_enter_opens_the_clip() {
    let mut h = harness(fake_app(None, Duration::from_millis(1)));
    step_until(&mut h, "the model", Duration::from_secs(10), |h| {
        h.state().model_label().is_some()
    });
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::L);
    h.step();
    h.step();
    h.event(egui::Event::Text(jfk().display().to_string()));
    h.step();
    h.key_press(egui::Key::Enter);
    h.step();
    step_until(&mut h, "the clip", Duration::from_secs(30), |h| {
        h.state().encoded()
    });
}

fn remote_app(command: String) -> ExplorerApp {
    ExplorerApp::new(
        Settings::default(),
        Startup {
            document: None,
            clip: Some(jfk()),
            model: ModelSource::Remote(command),
            load: Default::default(),
            audio: false,
        },
    )
}

fn full_grid(h: &mut Harness<'_, ExplorerApp>, what: &str) {
    step_until(h, what, Duration::from_secs(90), |h| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() == 17
    });
    h.step();
}

#[test]
fn a_served_fake_model_fills_the_same_grid_as_in_process() {
    let mut local = harness(fake_app(Some(jfk()), Duration::from_millis(1)));
    full_grid(&mut local, "the in-process grid");
    let command = common::served_fake(1, None);
    let mut remote = harness(remote_app(command.clone()));
    full_grid(&mut remote, "the remote grid");
    let texts = remote.state().grid_texts();
    assert_eq!(texts.len(), 17);
    assert_eq!(texts, local.state().grid_texts());
    // Where the model runs: the title and the menu bar say so.
    let title = remote.state().title();
    assert!(
        title.contains("fake") && title.ends_with(&format!("on `{command}`")),
        "{title}"
    );
    assert!(has_label(&remote, &format!("on `{command}`")));
    assert!(!local.state().title().contains(" on `"));
}

#[test]
fn a_server_killed_mid_decode_keeps_the_cells_and_reconnects() {
    let t = common::TempDir::new();
    let pid_file = t.0.join("server.pid");
    let command = common::served_fake(25, Some(&pid_file));
    let mut h = harness(remote_app(command));
    step_until(&mut h, "some cells", Duration::from_secs(60), |h| {
        h.state().result_count() >= 2
    });
    assert!(h.state().busy(), "still decoding when the server dies");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    step_until(&mut h, "the lost link", Duration::from_secs(20), |h| {
        h.state().lost_link().is_some()
    });
    h.step();
    let kept = h.state().result_count();
    assert!(kept >= 2, "the cells shown stay: {kept}");
    let status = h.state().status_text().unwrap_or_default().to_string();
    assert!(
        status.starts_with("remote model lost: the remote model ended (exit status 137)"),
        "{status}"
    );
    assert!(!h.state().busy());
    assert!(h.state().title().ends_with("(lost)"));
    // Nothing is asked of a lost link, and nothing panics while it is lost.
    let asked = h.state().decode_requests();
    h.state_mut().command(Command::SetKeep(40.0));
    for _ in 0..5 {
        h.step();
    }
    assert_eq!(h.state().decode_requests(), asked);
    h.state_mut().command(Command::SetKeep(25.0));
    h.step();
    h.get_by_role_and_label(Role::Button, "Reconnect").click();
    full_grid(&mut h, "the grid after reconnecting");
    assert!(h.state().lost_link().is_none());
    assert!(h.state().decode_requests() > asked);
}

#[test]
fn ctrl_r_connects_to_a_typed_server_and_the_local_model_comes_back() {
    let mut h = harness(fake_app(Some(jfk()), Duration::from_millis(1)));
    full_grid(&mut h, "the in-process grid");
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::R);
    h.step();
    h.step();
    assert!(has_label(&h, "Connect to a remote model"));
    let command = common::served_fake(1, None);
    h.event(egui::Event::Text(command.clone()));
    h.step();
    h.key_press(egui::Key::Enter);
    h.step();
    step_until(&mut h, "the remote model", Duration::from_secs(30), |h| {
        h.state().title().contains(" on `") && h.state().model_label().is_some()
    });
    // The same model served: the cells stay, nothing is decoded again.
    full_grid(&mut h, "the remote grid");
    assert_eq!(h.state().settings().recent_remotes, vec![command.clone()]);
    assert!(h.query_all_by_label_contains("model on `…").count() == 1);
    // Back to a model here: the fake has no directory, so the default model loads (when it
    // is on disk) or the error says how to choose one; either way the remote one is gone.
    h.state_mut().command(Command::UseLocalModel);
    h.step();
    assert!(
        !h.state().title().contains(" on `"),
        "{}",
        h.state().title()
    );
    assert!(has_label(&h, "model here"));
}

/// Pinning a cell makes it every cell's comparison: the others' word diff and WER are against
/// its text (the pinned one shows no diff and WER 0); unpinning brings back `full` and the
/// reference transcript (none here: no WER).
#[test]
fn a_pinned_cell_is_what_every_other_cell_is_compared_with() {
    let mut h = harness(fake_app(Some(jfk()), Duration::from_millis(1)));
    step_until(&mut h, "the grid", Duration::from_secs(60), |h| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() == 17
    });
    h.step();
    let (runs, _, _) = h.state().grid_runs();
    let find = |m: &str, keep: f64| {
        runs.iter()
            .find(|(r, _)| r.spec.method.name() == m && (r.spec.keep - keep).abs() < 1e-9)
            .map(|(r, t)| (r.key, t.clone().unwrap()))
            .unwrap()
    };
    let (topk, topk_text) = find("topk", 0.1);
    let (full, full_text) = find("full", 1.0);
    assert_eq!(h.state().cell_comparison(&full), Some((false, None)));
    assert_eq!(h.state().cell_comparison(&topk).map(|c| c.0), Some(true));
    h.state_mut().command(Command::PinCell(Some(topk)));
    h.step();
    h.step();
    assert_eq!(h.state().cell_comparison(&topk), Some((false, Some(0.0))));
    let want = prunescope::eval::metrics::wer::sentence_wer(&topk_text, &full_text);
    assert!(
        want.is_some_and(|w| w > 0.0),
        "{topk_text:?} vs {full_text:?}"
    );
    assert_eq!(h.state().cell_comparison(&full), Some((true, want)));
    assert!(has_label(&h, "method (vs pinned)"));
    h.state_mut().command(Command::PinCell(None));
    h.step();
    h.step();
    assert_eq!(h.state().cell_comparison(&full), Some((false, None)));
    assert!(!has_label(&h, "method (vs pinned)"));
}
