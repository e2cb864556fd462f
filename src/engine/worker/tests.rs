use super::*;
use crate::engine::{Decoding, RunMethod, RunSpec, Tail};
use crate::model::fake::FakeModel;
use crate::prune::Method;
use crate::prune::Params;

fn keyed(m: Method, keep: f64) -> KeyedRun {
    let spec = RunSpec {
        method: RunMethod::Prune(m),
        keep,
    };
    KeyedRun::new(spec, &Params::default(), &Decoding::default())
}

fn next(w: &Worker) -> Event {
    w.recv_timeout(Duration::from_secs(20))
        .expect("the worker answers")
}

#[test]
fn stale_decode_is_cancelled_and_newest_runs() {
    let w = Worker::spawn(|_| {}).unwrap();
    w.send(Request::UseModel(Box::new(FakeModel::new(
        Duration::from_millis(20),
    ))));
    assert!(matches!(next(&w), Event::ModelLoaded { .. }));
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/jfk.wav");
    w.send(Request::OpenClip(OpenClip {
        job: 1,
        clip: ClipSource::Path(clip),
        scoring: Scoring::every_layer(),
    }));
    assert!(matches!(next(&w), Event::ClipLoaded { job: 1, .. }));
    let n = loop {
        if let Event::ClipEncoded(e) = next(&w) {
            break e.report.scores.len();
        }
    };
    assert_eq!(n, 550);
    let spec = |m, keep| keyed(m, keep);
    let params = Params::default();
    w.send(Request::Decode(Decode {
        job: 2,
        clip: None,
        runs: vec![spec(Method::Full, 1.0), spec(Method::TopK, 0.5)],
        first: 1,
        params: params.clone(),
        decoding: Decoding {
            tail: Tail::Tokens(0),
            ..Decoding::default()
        },
    }));
    std::thread::sleep(Duration::from_millis(30));
    w.cancel();
    w.send(Request::Decode(Decode {
        job: 3,
        clip: None,
        runs: vec![spec(Method::Segmentwise, 0.25)],
        first: 0,
        params,
        decoding: Decoding {
            tail: Tail::Tokens(0),
            ..Decoding::default()
        },
    }));
    let mut finished = Vec::new();
    let mut cells = Vec::new();
    while finished.len() < 2 {
        match next(&w) {
            Event::DecodeFinished { job, cancelled, .. } => finished.push((job, cancelled)),
            Event::CellDone { job, result, .. } => cells.push((job, result.method)),
            _ => {}
        }
    }
    assert_eq!(finished, vec![(2, true), (3, false)]);
    assert_eq!(cells, vec![(3, RunMethod::Prune(Method::Segmentwise))]);
}

/// A request made for a clip before another was opened decodes nothing: its cells would be
/// the new clip's under the old clip's keys (found by the explorer's monkey, tests/abuse).
#[test]
fn a_decode_for_a_clip_no_longer_open_decodes_nothing() {
    let w = Worker::with_model(Box::new(FakeModel::new(Duration::ZERO))).unwrap();
    assert!(matches!(next(&w), Event::ModelLoaded { .. }));
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for (job, clip) in [(1, "assets/jfk.wav"), (2, "tests/data/arctic_a0007.wav")] {
        w.send(Request::OpenClip(OpenClip {
            job,
            clip: ClipSource::Path(data.join(clip)),
            scoring: Scoring::every_layer(),
        }));
    }
    for (job, clip) in [(3, Some(1)), (4, Some(2)), (5, None)] {
        w.send(Request::Decode(Decode {
            job,
            clip,
            runs: vec![keyed(Method::Full, 1.0)],
            first: 0,
            params: Params::default(),
            decoding: Decoding::default(),
        }));
        let cells = loop {
            match next(&w) {
                Event::DecodeFinished {
                    job: j, cancelled, ..
                } if j == job => break (cancelled, 0),
                Event::CellDone { job: j, .. } if j == job => {
                    let Event::DecodeFinished { cancelled, .. } = next(&w) else {
                        panic!("one cell, then the end")
                    };
                    break (cancelled, 1);
                }
                _ => {}
            }
        };
        // Only the clip the worker has now (arctic, job 2) is decoded.
        assert_eq!(
            cells,
            if job == 3 { (true, 0) } else { (false, 1) },
            "job {job}"
        );
    }
}

/// The worker wakes its caller at once for the scores, the cells decoded first and the end
/// of a request, and within [`LATER`] for progress and the rest of the grid.
#[test]
fn wakes_at_once_only_for_what_the_user_waits_on() {
    let wakes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = wakes.clone();
    let w = Worker::spawn(move |within| log.lock().unwrap().push(within)).unwrap();
    w.send(Request::UseModel(Box::new(FakeModel::new(
        Duration::from_millis(1),
    ))));
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/jfk.wav");
    w.send(Request::OpenClip(OpenClip {
        job: 1,
        clip: ClipSource::Path(clip),
        scoring: Scoring::every_layer(),
    }));
    let spec = |m, keep| keyed(m, keep);
    w.send(Request::Decode(Decode {
        job: 2,
        clip: None,
        runs: vec![
            spec(Method::Segmentwise, 0.25),
            spec(Method::Full, 1.0),
            spec(Method::TopK, 0.5),
        ],
        first: 1,
        params: Params::default(),
        decoding: Decoding::default(),
    }));
    let mut events = Vec::new();
    loop {
        let e = next(&w);
        let end = matches!(e, Event::DecodeFinished { .. });
        events.push(e);
        if end {
            break;
        }
    }
    // The wake follows its event's send: give the last one a moment.
    let t0 = std::time::Instant::now();
    while wakes.lock().unwrap().len() < events.len() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let wakes = wakes.lock().unwrap().clone();
    assert_eq!(wakes.len(), events.len());
    let mut cells = 0;
    for (e, within) in events.iter().zip(&wakes) {
        let want = match e {
            Event::Progress { .. } => LATER,
            Event::CellDone { key, .. } => {
                cells += 1;
                if *key == keyed(Method::Segmentwise, 0.25).key {
                    Duration::ZERO
                } else {
                    LATER
                }
            }
            _ => Duration::ZERO,
        };
        assert_eq!(*within, want, "{e:?}");
    }
    assert_eq!(cells, 3);
}

#[test]
fn bad_clip_and_bad_model_are_events() {
    let w = Worker::spawn(|_| {}).unwrap();
    w.send(Request::OpenClip(OpenClip {
        job: 7,
        clip: ClipSource::Path(PathBuf::from("/nonexistent/clip.wav")),
        scoring: Scoring::default(),
    }));
    assert!(matches!(next(&w), Event::ClipFailed { job: 7, .. }));
    w.send(Request::LoadModel {
        dir: PathBuf::from("/nonexistent/model"),
        options: LoadOptions::default(),
    });
    assert!(matches!(next(&w), Event::ModelFailed { .. }));
}

/// A model whose encoder panics: the bug the worker must not turn into a hang.
struct Panicking(FakeModel);

impl AudioLanguageModel for Panicking {
    fn info(&self) -> &crate::model::ModelInfo {
        self.0.info()
    }
    fn encode(
        &self,
        _samples: &[f32],
        _layers: crate::scores::Layers,
    ) -> crate::model::Result<crate::model::EncodedWindow> {
        panic!("a bug in the encoder");
    }
    fn generate(
        &self,
        inputs: &[crate::model::DecodeInput],
        cancel: &AtomicBool,
        on_finished: &mut crate::model::OnFinished<'_>,
    ) -> crate::model::Result<Vec<crate::model::Generation>> {
        self.0.generate(inputs, cancel, on_finished)
    }
}

/// A worker thread that dies (a panic) is reported once as lost, then the worker waits quietly
/// instead of spinning; before, the host's wait for its next event never ended.
#[test]
fn a_worker_that_panics_is_reported_once_as_stopped() {
    let w = Worker::spawn(|_| {}).unwrap();
    w.send(Request::UseModel(Box::new(Panicking(FakeModel::new(
        Duration::from_millis(1),
    )))));
    assert!(matches!(next(&w), Event::ModelLoaded { .. }));
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/jfk.wav");
    w.send(Request::OpenClip(OpenClip {
        job: 1,
        clip: ClipSource::Path(clip),
        scoring: Scoring::every_layer(),
    }));
    let lost = loop {
        match next(&w) {
            Event::Lost(e) => break e,
            Event::ClipLoaded { .. } | Event::Progress { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(matches!(lost, LinkError::Stopped), "{lost}");
    let t = Instant::now();
    assert!(w.recv_timeout(Duration::from_millis(200)).is_none());
    assert!(t.elapsed() >= Duration::from_millis(150), "it waited");
    assert!(w.try_recv().is_none());
}
