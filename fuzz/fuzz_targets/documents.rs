//! What `prunescope open` reads: analyses, workspaces (with their embedded clip) and eval
//! results files, told apart by their content; and a document's clip located.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prunescope::document::{self, Opened};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::scratch("doc.json", data);
    match document::open(&p) {
        Ok(Opened::Workspace(w)) => {
            let embedded = w.embedded_clip(&p).ok().flatten();
            let _ = document::locate_clip(&p, &w.clip.path, Some(&w.clip.sha256), embedded);
        }
        Ok(Opened::Run(r)) => {
            for rec in &r.records {
                let _ = rec.analysis(&r.header);
            }
        }
        _ => {}
    }
});
