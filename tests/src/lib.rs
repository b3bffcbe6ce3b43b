//! splitstore-conformance
