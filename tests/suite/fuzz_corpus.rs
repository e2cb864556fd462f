//! Every fuzz target's committed seeds and findings (`fuzz/corpus/TARGET`) through the target's
//! own body, in the plain test build: the corpus stays clean between fuzzing rounds
//! (`scripts/fuzz`, which runs the instrumented, coverage-guided build).

use std::path::Path;

#[path = "../../fuzz/src/lib.rs"]
mod bodies;

#[test]
fn every_committed_fuzz_input_runs_clean_through_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut counts = Vec::new();
    for &(name, body) in bodies::TARGETS {
        let dir = corpus.join(name);
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            // A panic names the input: the test's own message is the file.
            let ran = std::panic::catch_unwind(|| body(&data));
            assert!(ran.is_ok(), "{name}: {} panicked", p.display());
            n += 1;
        }
        assert!(n > 0, "{name} has no committed seeds");
        counts.push(format!("{name} {n}"));
    }
    println!("fuzz inputs replayed: {}", counts.join(", "));
}
