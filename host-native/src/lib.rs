//! splitstore-native
