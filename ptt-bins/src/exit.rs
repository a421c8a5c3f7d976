//! How a verb fails, and so which exit code `ptt` returns.

/// A verb's failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// A check ran and its verdict is negative (exit 1). The verb has already
    /// printed the verdict.
    #[error("negative verdict")]
    Negative,
    /// Bad usage or bad input (exit 2), with one line saying what was wrong.
    #[error("{0}")]
    Input(String),
}

impl Failure {
    /// Bad input, from anything that displays.
    pub(crate) fn input(message: impl std::fmt::Display) -> Self {
        Failure::Input(message.to_string())
    }
}

/// The result of a verb.
pub(crate) type Outcome = Result<(), Failure>;
