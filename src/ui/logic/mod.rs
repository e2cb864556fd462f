//! The explorer's pure logic: no egui, no model, each file unit-tested. Nothing here imports
//! another room of `ui/`.

pub mod cell_view;
pub mod compare;
pub mod corpus;
pub mod layers;
pub mod marks;
pub mod pool;
pub mod timeline;
pub mod words;
