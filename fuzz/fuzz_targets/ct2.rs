//! The CTranslate2 `model.bin` reader: header, variables, aliases, and each variable's
//! values as f32. Every input is a model or one `Parsed` error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = prunescope::model::ct2::parse(data) {
        for v in m.variables.values() {
            let _ = v.to_f32();
        }
    }
});
