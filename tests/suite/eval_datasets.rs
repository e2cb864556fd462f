//! The dataset loaders on small fixture folders laid out like the published sets
//! (`tests/data/eval/{clotho,audiocaps,clothoaqa,mmau,asr}`, a few synthetic clips each).

use std::path::{Path, PathBuf};

use prunescope::eval::datasets::{load, DatasetKind};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/eval")
        .join(name)
}

#[test]
fn clotho_reads_quoted_names_and_five_captions() {
    let d = load(DatasetKind::Clotho, &dir("clotho")).expect("loads");
    let ids: Vec<&str> = d.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["A tone, in a room.wav", "silence 01.wav"]);
    assert_eq!(d.items[0].refs.len(), 5);
    assert_eq!(d.items[0].refs[1], "A single, high tone rings.");
    assert!(d.items[0]
        .audio
        .ends_with("evaluation/A tone, in a room.wav"));
    assert_eq!(d.missing_audio.len(), 1, "missing.wav is listed but absent");
    // The CSV itself works as the path too.
    let f = load(
        DatasetKind::Clotho,
        &dir("clotho").join("clotho_captions_evaluation.csv"),
    )
    .expect("loads from the file");
    assert_eq!(f.items, d.items);
}

#[test]
fn audiocaps_groups_rows_and_finds_audio_by_any_accepted_name() {
    let d = load(DatasetKind::Audiocaps, &dir("audiocaps")).expect("loads");
    let got: Vec<(&str, usize, String)> = d
        .items
        .iter()
        .map(|i| {
            (
                i.id.as_str(),
                i.refs.len(),
                i.audio.file_name().unwrap().to_string_lossy().into_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("yt_tone_01", 2, "yt_tone_01.wav".to_string()),
            ("yt_noise_2", 2, "Yyt_noise_2.wav".to_string()),
            ("yt_silent_3", 1, "1003.wav".to_string()),
        ]
    );
    assert_eq!(d.items[0].refs, ["A tone plays", "A constant beep"]);
    assert_eq!(d.missing_audio.len(), 1);
}

#[test]
fn clothoaqa_builds_the_papers_two_subsets() {
    let d = load(DatasetKind::Clothoaqa, &dir("clothoaqa")).expect("loads");
    let got: Vec<(&str, &str, Vec<String>)> = d
        .items
        .iter()
        .map(|i| {
            (
                i.question.as_deref().unwrap(),
                i.group.as_deref().unwrap(),
                i.refs.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Is a tone playing?", "unanimous", vec!["yes".to_string()]),
            ("Is a dog barking?", "unanimous", vec!["no".to_string()]),
            // "Is it raining?" (yes/no/yes) is in neither subset.
            (
                "What is making the sound?",
                "nonbinary",
                vec!["static".to_string(), "a radio".to_string()]
            ),
        ]
    );
}

#[test]
fn mmau_reads_choices_tasks_and_relative_audio() {
    let d = load(DatasetKind::Mmau, &dir("mmau")).expect("loads");
    assert_eq!(d.items.len(), 3);
    let i = &d.items[0];
    assert_eq!(i.id, "mmau-1");
    assert_eq!(i.choices, ["Dog", "Sine tone", "Car", "Speech"]);
    assert_eq!(i.refs, ["Sine tone"]);
    assert_eq!(i.group.as_deref(), Some("sound"));
    assert!(i.audio.is_file());
    let tasks: Vec<&str> = d
        .items
        .iter()
        .map(|i| i.group.as_deref().unwrap())
        .collect();
    assert_eq!(tasks, ["sound", "speech", "music"]);
}

#[test]
fn asr_manifest_in_jsonl_and_csv() {
    let j = load(DatasetKind::Asr, &dir("asr")).expect("jsonl from the folder");
    assert_eq!(j.items.len(), 2);
    assert_eq!(j.items[0].id, "arctic");
    assert!(j.items[1].refs[0].starts_with("And so, my fellow"));
    assert!(j.items.iter().all(|i| i.audio.is_file()));
    let c = load(DatasetKind::Asr, &dir("asr").join("manifest.csv")).expect("csv");
    assert_eq!(c.items.len(), 1);
    assert_eq!(c.items[0].refs, j.items[0].refs);
}

#[test]
fn readable_errors() {
    let e = load(DatasetKind::Clotho, &dir("nowhere")).unwrap_err();
    assert!(e.to_string().contains("nowhere"), "{e}");
    let e = load(DatasetKind::Clotho, &dir("mmau")).unwrap_err();
    assert!(
        e.to_string().contains("clotho_captions_evaluation.csv"),
        "{e}"
    );
    let e = load(DatasetKind::Mmau, &dir("clotho")).unwrap_err();
    assert!(e.to_string().contains("mmau-test-mini.json"), "{e}");
}
