//! Who a viewer is, as the stream's authenticator said.

use std::fmt;
use std::sync::Arc;

/// The identity an authenticator returned for a viewer, carried with every
/// event that viewer sends. Cheap to clone (reference-counted string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Principal(Arc<str>);

impl Principal {
    /// A principal named `name` (a user id, an e-mail, a role: the application decides).
    pub fn new(name: impl AsRef<str>) -> Self {
        Principal(Arc::from(name.as_ref()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Principal {
    fn from(s: &str) -> Self {
        Principal::new(s)
    }
}

impl From<String> for Principal {
    fn from(s: String) -> Self {
        Principal::new(s)
    }
}
