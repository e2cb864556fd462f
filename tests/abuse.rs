//! Long runs and random use, measured by what they leave behind (docs/SPEC.md section 11): the
//! soak (the worker opening 200 clips; a served model answering 1,000 requests with random
//! cancels and a dropped connection) and the monkey (thousands of random commands in the
//! explorer). One test in a test binary of its own, the parts one after another, so the
//! process's memory is theirs alone. Seeds are fixed (`SOAK_SEED`, `MONKEY_SEED` replay
//! another) and printed with the figures.
#![allow(clippy::too_many_lines)]

mod common;
#[cfg(feature = "gui")]
#[path = "abuse/monkey.rs"]
mod monkey;
#[path = "abuse/soak.rs"]
mod soak;

fn seed(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn soak_then_monkey() {
    let t = common::TempDir::new();
    // `ABUSE_ONLY=monkey` runs the monkey alone (to replay a seed).
    if std::env::var("ABUSE_ONLY").as_deref() != Ok("monkey") {
        // First, while the process's peak memory is still the soak's own.
        soak::two_hundred_clips(&t);
        // From here as the explorer runs: it caps glibc's malloc arenas before its first
        // thread, and arenas the served links' threads made before the cap would stay in use.
        prunescope::util::bound_malloc_arenas();
        soak::a_thousand_requests(&t, seed("SOAK_SEED", 25));
    }
    #[cfg(feature = "gui")]
    monkey::run(&t, seed("MONKEY_SEED", 7));
}
