//! The app's event rule, with the worker's events handed over directly: a result lands by its
//! key, and only while its request is the one in flight.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui_kittest::Harness;

use super::ExplorerApp;
use crate::engine::worker::Event;
use crate::model::fake::FakeModel;
use crate::model::Precision;
use crate::ui::commands::Command;
use crate::ui::settings::Settings;
use crate::ui::state::{ModelSource, Startup};

fn step_until(h: &mut Harness<'_, ExplorerApp>, what: &str, done: impl Fn(&ExplorerApp) -> bool) {
    let t0 = Instant::now();
    while !done(h.state()) {
        h.step();
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_result_of_a_superseded_request_lands_in_no_cell() {
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/jfk.wav");
    let app = ExplorerApp::new(
        Settings::default(),
        Startup {
            document: None,
            clip: Some(clip),
            model: ModelSource::Given(Box::new(FakeModel::new(Duration::from_millis(1)))),
            audio: false,
            load: Default::default(),
        },
    );
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_ui_state(|ui, app: &mut ExplorerApp| app.show(ui), app);
    step_until(&mut h, "the grid", |a| {
        a.encoded() && !a.busy() && a.result_count() == 17
    });
    let some_result = h.state().grid_results()[0].clone();
    let first = h.state().state.decoding.as_ref().map(|d| d.job);
    // The slider moves: a new request for the 37 % column supersedes the first.
    h.state_mut().command(Command::SetKeep(37.0));
    let second = h.state().state.decoding.clone().expect("a new request");
    assert_ne!(Some(second.job), first);
    let key = h.state().state.slider_key();
    assert!(second.keys.contains(&key));
    // A result of the first request arrives late, for a cell the second one asks: it lands
    // nowhere, though its key is a cell of the grid.
    let ctx = h.ctx.clone();
    let stale = Event::CellDone {
        job: first.unwrap_or(0),
        key,
        result: some_result.clone(),
    };
    h.state_mut().on(stale, &ctx);
    assert!(h.state().state.result(&key).is_none());
    // The same answer from the request in flight lands in its cell.
    let current = Event::CellDone {
        job: second.job,
        key,
        result: some_result,
    };
    h.state_mut().on(current, &ctx);
    assert!(h.state().state.result(&key).is_some());
}

#[test]
fn a_dtype_on_the_command_line_becomes_the_standing_choice() {
    let startup = |precision| Startup {
        document: None,
        clip: None,
        model: ModelSource::None,
        audio: false,
        load: crate::model::LoadOptions {
            precision,
            ..Default::default()
        },
    };
    let remembered = Settings {
        precision: Precision::F16,
        ..Settings::default()
    };
    let app = ExplorerApp::new(remembered.clone(), startup(Precision::Bf16));
    assert_eq!(app.settings().precision, Precision::Bf16);
    // Without the flag, the remembered choice stays.
    let app = ExplorerApp::new(remembered, startup(Precision::Auto));
    assert_eq!(app.settings().precision, Precision::F16);
}
