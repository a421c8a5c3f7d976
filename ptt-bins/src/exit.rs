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
    /// Bad input (exit 2) whose explanation is already on standard error.
    #[error("reported")]
    Printed,
    /// Standard output was closed by its reader (`ptt … | head`): stop
    /// quietly with 141, the status of a command killed by SIGPIPE.
    #[error("standard output closed")]
    OutputClosed,
}

impl Failure {
    /// Bad input, from anything that displays.
    pub(crate) fn input(message: impl std::fmt::Display) -> Self {
        Failure::Input(message.to_string())
    }

    /// A failed write to standard output: [`Failure::OutputClosed`] when
    /// the reader has gone, else bad input naming the error.
    pub(crate) fn stdout(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::OutputClosed
        } else {
            Failure::Input(format!("writing standard output: {error}"))
        }
    }
}

/// The result of a verb.
pub(crate) type Outcome = Result<(), Failure>;
