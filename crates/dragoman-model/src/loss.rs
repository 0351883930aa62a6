//! Reports of what a translation could not carry, so nothing is ever dropped silently.

use serde::{Deserialize, Serialize};

/// What happened to a field the target could not express as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// The field is absent from the output.
    Dropped,
    /// The field is present in a nearby but not identical form.
    Approximated,
}

/// One dropped or approximated field, named by its JSON path in the input when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    pub kind: LossKind,
    pub path: String,
    pub note: String,
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            LossKind::Dropped => "dropped",
            LossKind::Approximated => "approximated",
        };
        write!(f, "{kind}: {}: {}", self.path, self.note)
    }
}

/// The sink every encoder and decoder writes its losses into. Duplicate reports of the same
/// path and note (say, one per streamed delta) are folded into one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Losses(Vec<Loss>);

impl Losses {
    pub fn new() -> Self {
        Losses(Vec::new())
    }

    pub fn dropped(&mut self, path: impl Into<String>, note: impl Into<String>) {
        self.push(LossKind::Dropped, path.into(), note.into());
    }

    pub fn approximated(&mut self, path: impl Into<String>, note: impl Into<String>) {
        self.push(LossKind::Approximated, path.into(), note.into());
    }

    fn push(&mut self, kind: LossKind, path: String, note: String) {
        if self
            .0
            .iter()
            .any(|l| l.kind == kind && l.path == path && l.note == note)
        {
            return;
        }
        self.0.push(Loss { kind, path, note });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Loss> {
        self.0.iter()
    }

    pub fn into_vec(self) -> Vec<Loss> {
        self.0
    }

    pub fn extend(&mut self, other: Losses) {
        for l in other.0 {
            self.push(l.kind, l.path, l.note);
        }
    }
}
