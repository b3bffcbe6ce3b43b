//! CIDs as their string forms in serialised reports (`#[serde(with = "crate::cid_serde")]`).

use alloc::{
    string::{String, ToString},
    vec::Vec,
};

use cid::Cid;
use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

/// Serialises CIDs as strings.
pub fn serialize<S: Serializer>(v: &[Cid], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|c| c.to_string()))
}

/// Parses CIDs from strings.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cid>, D::Error> {
    Vec::<String>::deserialize(d)?.iter().map(|t| Cid::try_from(t.as_str()).map_err(D::Error::custom)).collect()
}

/// The same for an optional list.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Vec<Cid>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Cid>>, D::Error> {
        Option::<Vec<String>>::deserialize(d)?
            .map(|v| v.iter().map(|t| Cid::try_from(t.as_str()).map_err(D::Error::custom)).collect())
            .transpose()
    }
}
