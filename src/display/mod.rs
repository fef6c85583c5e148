//! The display worker: consumes the QXL rings on its own thread and owns the canonical
//! surfaces and cursor.
#![forbid(unsafe_code)]
