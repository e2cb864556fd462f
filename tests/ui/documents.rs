//! What was computed, opened again in the explorer with no model: an exported analysis, a
//! saved workspace, an eval run's table; and bad files that must leave the window running.

use std::path::{Path, PathBuf};
use std::time::Duration;

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use prunescope::engine::Analysis;
use prunescope::eval::datasets::Item;
use prunescope::eval::runner::{Header, Record};
use prunescope::ui::commands::Command;
use prunescope::ui::state::{Page, SortBy};
use prunescope::ui::{ExplorerApp, ModelSource, Settings, Startup};
use prunescope::util::TempDir;

use super::{fake_app, has_label, jfk, random_weights_harness, step_until};

/// An app with no model at all.
fn bare_app() -> ExplorerApp {
    ExplorerApp::new(
        Settings::default(),
        Startup {
            clip: None,
            document: None,
            model: ModelSource::None,
            audio: false,
            load: Default::default(),
        },
    )
}

/// The fake model's whole grid on `clip`, exported to `dir`: the analysis document's path and
/// the grid's texts.
fn exported(clip: PathBuf, dir: &Path) -> (PathBuf, Vec<(String, f64, String)>) {
    let mut h = random_weights_harness(fake_app(Some(clip), Duration::from_millis(1)));
    step_until(&mut h, "the fake's grid", Duration::from_secs(60), |h| {
        h.state().encoded() && !h.state().busy() && h.state().result_count() == 17
    });
    let files = h.state().export(dir).unwrap();
    let doc = files
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("an analysis document");
    (doc, h.state().grid_texts())
}

fn open_in(h: &mut Harness<'_, ExplorerApp>, path: &Path, what: &str) {
    h.state_mut().open_document(path.to_path_buf());
    step_until(h, what, Duration::from_secs(30), |h| {
        h.state()
            .document()
            .is_some_and(|(_, audio)| audio != "decoding")
            || h.state().showing_corpus()
    });
    h.step();
}

#[test]
fn an_analysis_opens_with_no_model_and_asks_for_one_beyond_it() {
    let dir = TempDir::new("ui-doc").unwrap();
    let (doc, texts) = exported(jfk(), dir.path());
    let mut h = random_weights_harness(bare_app());
    h.step();
    open_in(&mut h, &doc, "the document");
    let app = h.state();
    assert_eq!(app.model_label(), None, "no model was loaded");
    let (label, audio) = app.document().unwrap();
    assert!(label.contains("fake"), "{label}");
    assert_eq!(audio, "found");
    assert_eq!(
        app.grid_texts(),
        texts,
        "the document's cells, in grid order"
    );
    assert!(app.encoded(), "the lanes have the document's scores");
    assert!(app.status_text().unwrap().contains("no model needed"));
    assert_eq!(app.decode_requests(), 0);
    // A setting the document does not hold says a model is needed, and offers one.
    h.state_mut().command(Command::SetKeep(37.0));
    h.step();
    h.step();
    let why = "not in the document: load a model to compute it";
    assert_eq!(h.query_all_by_label(why).count(), 5, "the slider's column");
    assert!(has_label(&h, "Load a model…"));
    assert!(has_label(&h, "Connect to a remote model…"));
    assert_eq!(h.state().decode_requests(), 0);
}

#[test]
fn the_model_that_made_a_document_computes_only_what_it_lacks() {
    let dir = TempDir::new("ui-doc").unwrap();
    let (doc, _) = exported(jfk(), dir.path());
    let mut h = random_weights_harness(fake_app(None, Duration::from_millis(1)));
    step_until(&mut h, "the fake model", Duration::from_secs(30), |h| {
        h.state().model_label().is_some()
    });
    h.state_mut().open_document(doc);
    // The same model: it encodes the clip, keeps the document's 17 cells and decodes only the
    // slider's new column (five methods at 37 %).
    step_until(&mut h, "the encoding", Duration::from_secs(30), |h| {
        h.state().document().is_none() && h.state().encoded() && !h.state().busy()
    });
    assert_eq!(h.state().result_count(), 17);
    assert_eq!(h.state().decode_requests(), 0, "nothing was missing");
    h.state_mut().command(Command::SetKeep(37.0));
    step_until(&mut h, "the new cell", Duration::from_secs(30), |h| {
        h.state().result_count() == 22 && !h.state().busy()
    });
}

#[test]
fn a_workspace_reopens_as_it_was_without_the_clip_or_the_model() {
    let dir = TempDir::new("ui-ws").unwrap();
    let clip = dir.path().join("speech.wav");
    std::fs::copy(jfk(), &clip).unwrap();
    // Tall enough that every cell's pin button is on screen.
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 2400.0))
        .with_max_steps(1000)
        .allow_missing_glyphs()
        .build_ui_state(
            |ui, app: &mut ExplorerApp| app.show(ui),
            fake_app(Some(clip.clone()), Duration::from_millis(1)),
        );
    h.state_mut().command(Command::SetKeep(37.0));
    h.state_mut().command(Command::SetSegments(6));
    step_until(&mut h, "the fake's grid", Duration::from_secs(60), |h| {
        h.state().encoded() && !h.state().busy() && h.state().grid_texts().len() == 22
    });
    let grid = h.state().grid_texts();
    // Pin the 37 % segmentwise cell through its button, as a user would.
    let key = {
        let app = h.state();
        assert!(app.pinned().is_none());
        app.grid_texts()
            .iter()
            .position(|(m, k, _)| m == "segmentwise" && (*k - 0.37).abs() < 1e-9)
            .unwrap()
    };
    let pins: Vec<_> = h.query_all_by_label("pin").collect();
    pins[key].click();
    h.step();
    h.step();
    assert_eq!(h.state().pinned(), Some(("segmentwise".into(), 0.37)));
    let ws = dir.path().join("session.prunescope");
    h.state_mut().save_workspace(ws.clone());
    assert!(
        h.state()
            .status_text()
            .unwrap()
            .contains("saved the workspace"),
        "{:?}",
        h.state().status_text()
    );
    drop(h);
    std::fs::remove_file(&clip).unwrap();
    let mut h = random_weights_harness(bare_app());
    h.step();
    open_in(&mut h, &ws, "the workspace");
    let app = h.state();
    assert_eq!(app.settings().keep_percent, 37.0);
    assert_eq!(app.settings().segments, 6);
    assert_eq!(app.grid_texts(), grid);
    assert_eq!(app.pinned(), Some(("segmentwise".into(), 0.37)));
    assert_eq!(
        app.document().map(|d| d.1),
        Some("found".into()),
        "the clip travelled inside the workspace"
    );
    assert!(app.model_label().is_none());
}

/// A run of three clips made from one analysis: clip `c{i}` says the document's outputs, its
/// reference the full run's text with `i` words more (so every setting's WER differs by clip).
fn run_dir(doc: &Path, dir: &Path) -> PathBuf {
    let a: Analysis = serde_json::from_str(&std::fs::read_to_string(doc).unwrap()).unwrap();
    let full = a.runs.iter().find(|r| r.method.name() == "full").unwrap();
    let settings: Vec<String> = a
        .runs
        .iter()
        .map(prunescope::eval::runner::setting_of)
        .collect();
    let header = Header {
        prunescope_eval: 1,
        dataset: "asr".into(),
        data: "manifest.csv".into(),
        model: a.report.model_label(),
        settings,
        params: String::new(),
        tail: a.plan.as_ref().unwrap().decoding.tail,
        items: 3,
        shard: None,
        plan: a.plan.clone(),
    };
    let mut text = serde_json::to_string(&header).unwrap() + "\n";
    for i in 0..3 {
        let mut runs = a.runs.clone();
        for r in &mut runs {
            r.attention = None;
        }
        // Clip 1's top-k output drops its words: the difference top-k minus segmentwise is
        // largest there.
        if i == 1 {
            for r in runs.iter_mut().filter(|r| r.method.name() == "topk") {
                r.text = String::new();
            }
        }
        let extra = " extra".repeat(i);
        let record = Record {
            index: i,
            item: Item {
                id: format!("c{i}"),
                audio: jfk(),
                refs: vec![format!("{}{extra}", full.text)],
                question: None,
                choices: Vec::new(),
                group: None,
            },
            duration_s: a.report.clip.duration_s,
            encode_ms: 1.0,
            runs,
            clip: Some(a.report.clone()),
            error: None,
        };
        text += &(serde_json::to_string(&record).unwrap() + "\n");
    }
    let out = dir.join("run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("results.jsonl"), text).unwrap();
    out
}

#[test]
fn an_eval_run_shows_its_clips_sorts_by_a_difference_and_opens_a_clip() {
    let dir = TempDir::new("ui-run").unwrap();
    let (doc, texts) = exported(jfk(), dir.path());
    let run = run_dir(&doc, dir.path());
    let mut h = random_weights_harness(bare_app());
    h.step();
    open_in(&mut h, &run, "the run's table");
    assert!(h.state().showing_corpus());
    h.state_mut().command(Command::CompareSettings(
        texts
            .iter()
            .position(|t| t.0 == "topk" && t.1 == 0.25)
            .unwrap(),
        texts
            .iter()
            .position(|t| t.0 == "segmentwise" && t.1 == 0.25)
            .unwrap(),
    ));
    h.step();
    let rows = h.state().corpus_rows();
    assert_eq!(
        rows[0].0, "c1",
        "largest top-k minus segmentwise WER first: {rows:?}"
    );
    assert!(rows[0].1.unwrap() > 0.0);
    let (delta, [lo, hi]) = h.state().corpus_delta().unwrap();
    assert!(lo <= delta && delta <= hi, "{lo} {delta} {hi}");
    assert!(has_label(&h, "c1"));
    h.state_mut().command(Command::SortCorpus(SortBy::Clip));
    let ids: Vec<String> = h.state().corpus_rows().into_iter().map(|r| r.0).collect();
    assert_eq!(ids, ["c0", "c1", "c2"]);
    // A clip opens with the run's outputs, decoding nothing.
    h.get_by_label("c2").click();
    h.step();
    step_until(&mut h, "clip c2", Duration::from_secs(30), |h| {
        h.state()
            .document()
            .is_some_and(|(_, audio)| audio == "found")
    });
    let app = h.state();
    assert!(!app.showing_corpus());
    assert_eq!(app.grid_texts(), texts);
    assert_eq!(app.decode_requests(), 0);
    h.state_mut().command(Command::ShowPage(Page::Corpus));
    assert!(h.state().showing_corpus());
}

#[test]
fn corrupt_truncated_and_foreign_files_are_one_message_each() {
    let dir = TempDir::new("ui-bad").unwrap();
    let (doc, texts) = exported(jfk(), dir.path());
    let full = std::fs::read(&doc).unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("cut.json", &full[..full.len() / 3], "is cut short"),
        (
            "other.json",
            br#"{"name": "a package.json"}"#,
            "not a prunescope document",
        ),
        (
            "noise.json",
            b"{\x00\x01 garbage",
            "not a prunescope document",
        ),
        (
            "future.prunescope",
            br#"{"prunescope_workspace": 7}"#,
            "format 7",
        ),
    ];
    let mut h = random_weights_harness(bare_app());
    h.step();
    for (name, bytes, want) in cases {
        let p = dir.file(name, bytes).unwrap();
        h.state_mut().open_document(p);
        step_until(&mut h, name, Duration::from_secs(20), |h| {
            h.state()
                .status_text()
                .is_some_and(|s| s.contains(name) && !s.starts_with("opening"))
        });
        let status = h.state().status_text().unwrap().to_string();
        assert!(status.contains(want), "{name}: {status}");
        h.step();
        assert!(has_label(&h, &status), "shown: {status}");
    }
    // Still usable: the good document opens.
    open_in(&mut h, &doc, "the good document");
    assert_eq!(h.state().grid_texts(), texts);
}
