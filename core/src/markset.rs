//! The mark set. (Being written.)
