//! Robinson's f(w) per token and Fisher's inverse chi-square combination.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use crate::db::{Counts, TokenDb};
use crate::tokenize::Tokens;

/// Parameters of the classifier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Robinson's x: the assumed f(w) of a token never seen.
    pub robx: f64,
    /// Robinson's s: the strength given to x against a token's own counts.
    pub robs: f64,
    /// Tokens with |f(w) − 0.5| under this are left out of the combination.
    pub min_dev: f64,
    /// Score at or above which a message is spam.
    pub spam_cutoff: f64,
    /// Score at or under which a message is ham; between the two it is unsure.
    pub ham_cutoff: f64,
    /// How many of the strongest tokens a [`Classification`] reports.
    pub clues: usize,
    /// At most this many tokens, the strongest, enter the combination
    /// (0: all). Without a cap, thousands of OSB tokens make both chi-square
    /// tails vanish on long mixed messages and the score sticks at 0.5.
    pub max_tokens: usize,
}

impl Default for Params {
    /// SpamBayes' published defaults, not fitted to any corpus: x = 0.5,
    /// s = 0.45, tokens within 0.1 of neutral left out, ham at or under
    /// 0.20, spam at or over 0.90. (Bogofilter's s = 0.0178 trusts a token
    /// seen in a few messages almost fully; with OSB pairs, whose counts are
    /// small, that makes long messages look certain both ways at once.)
    fn default() -> Self {
        Params {
            robx: 0.5,
            robs: 0.45,
            min_dev: 0.1,
            spam_cutoff: 0.9,
            ham_cutoff: 0.2,
            clues: 8,
            max_tokens: 0,
        }
    }
}

/// A verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// Spam.
    Spam,
    /// Not spam.
    Ham,
    /// The evidence is too weak either way.
    Unsure,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Spam => "spam",
            Verdict::Ham => "ham",
            Verdict::Unsure => "unsure",
        })
    }
}

/// A word that is not a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("verdict {0:?} is not one of spam, ham, unsure (or Yes, No, Unsure)")]
pub struct VerdictError(pub String);

impl FromStr for Verdict {
    type Err = VerdictError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("spam") || s.eq_ignore_ascii_case("yes") {
            Ok(Verdict::Spam)
        } else if s.eq_ignore_ascii_case("ham") || s.eq_ignore_ascii_case("no") {
            Ok(Verdict::Ham)
        } else if s.eq_ignore_ascii_case("unsure") {
            Ok(Verdict::Unsure)
        } else {
            Err(VerdictError(s.into()))
        }
    }
}

/// One token that weighed in a verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Clue {
    /// The token hash.
    pub hash: u64,
    /// Its readable form, when the tokens were explained.
    pub name: Option<String>,
    /// Robinson's f(w): the token's degree of belief in spam.
    pub spamminess: f64,
    /// Its counts in the database.
    pub counts: Counts,
}

/// The result of classifying one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The verdict.
    pub verdict: Verdict,
    /// Fisher's combined score in [0, 1]: 0 ham, 1 spam.
    pub score: f64,
    /// Tokens that entered the combination.
    pub tokens_used: usize,
    /// The strongest tokens, strongest first.
    pub clues: Vec<Clue>,
    /// An attachment with an executable or script extension, which made the
    /// verdict spam whatever the words said.
    pub dangerous_attachment: Option<String>,
}

impl Classification {
    /// The `X-Spam-Status` field value: `Yes|No|Unsure, score=0.9876`.
    pub fn status(&self) -> SpamStatus {
        SpamStatus {
            verdict: self.verdict,
            score: self.score,
        }
    }

    /// The header fields to add to the message: `X-Spam-Status` with the
    /// score, the attachment rule or the strongest tokens, and
    /// `X-Spam-Flag: YES` when spam. Each line ends in CRLF; long values are
    /// folded; token text is reduced to printable ASCII.
    pub fn headers(&self) -> String {
        let mut out = alloc::format!("X-Spam-Status: {}", self.status());
        let mut line = out.len();
        let mut add = |out: &mut String, item: &str| {
            if line + item.len() + 2 > 76 {
                out.push_str("\r\n\t");
                line = 1;
            } else {
                out.push(' ');
                line += 1;
            }
            out.push_str(item);
            line += item.len();
        };
        if let Some(name) = &self.dangerous_attachment {
            add(&mut out, &alloc::format!("attachment=\"{}\"", ascii(name)));
        } else {
            add(&mut out, &alloc::format!("tokens={}", self.tokens_used));
            for clue in &self.clues {
                let label = match &clue.name {
                    Some(n) => ascii(n),
                    None => alloc::format!("#{:016x}", clue.hash),
                };
                add(
                    &mut out,
                    &alloc::format!("\"{label}\"={:.3}", clue.spamminess),
                );
            }
        }
        out.push_str("\r\n");
        if self.verdict == Verdict::Spam {
            out.push_str("X-Spam-Flag: YES\r\n");
        }
        out
    }
}

fn ascii(s: &str) -> String {
    s.chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The parsed form of an `X-Spam-Status` value's first part:
/// `Yes|No|Unsure, score=S`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpamStatus {
    /// The verdict (`Yes` spam, `No` ham, `Unsure`).
    pub verdict: Verdict,
    /// The score, printed with 4 decimals.
    pub score: f64,
}

impl fmt::Display for SpamStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.verdict {
            Verdict::Spam => "Yes",
            Verdict::Ham => "No",
            Verdict::Unsure => "Unsure",
        };
        write!(f, "{word}, score={:.4}", self.score)
    }
}

/// An `X-Spam-Status` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The verdict word is unknown.
    #[error("X-Spam-Status: {0}")]
    Verdict(#[from] VerdictError),
    /// No `score=` after the verdict.
    #[error("X-Spam-Status: no \"score=\" in {0:?}")]
    NoScore(String),
    /// The score is not a number in [0, 1].
    #[error("X-Spam-Status: score {0:?} is not a number between 0 and 1")]
    Score(String),
}

impl FromStr for SpamStatus {
    type Err = StatusError;
    /// Parses `Yes, score=0.9876` (anything after the score is ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (word, rest) = s.split_once(',').unwrap_or((s, ""));
        let verdict: Verdict = word.trim().parse()?;
        let rest = rest.trim_start();
        let Some(score) = rest.strip_prefix("score=") else {
            return Err(StatusError::NoScore(s.into()));
        };
        let score = score.split_whitespace().next().unwrap_or("");
        match score.parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(SpamStatus { verdict, score: v }),
            _ => Err(StatusError::Score(score.into())),
        }
    }
}

/// Upper tail of the chi-square distribution with `2 * k` degrees of freedom
/// at `x2`, computed in scaled form so that thousands of tokens neither
/// underflow nor overflow.
pub(crate) fn chi2q(x2: f64, k: usize) -> f64 {
    ln_chi2q(x2, k).exp().clamp(0.0, 1.0)
}

/// The natural logarithm of [`chi2q`], exact where `chi2q` underflows.
pub(crate) fn ln_chi2q(x2: f64, k: usize) -> f64 {
    if x2.is_nan() || x2 <= 0.0 {
        return 0.0;
    }
    let m = x2 / 2.0;
    let mut log_scale = -m;
    let mut term = 1.0f64;
    let mut sum = 1.0f64;
    for i in 1..k {
        term *= m / i as f64;
        sum += term;
        if sum > 1e250 {
            log_scale += sum.ln();
            term /= sum;
            sum = 1.0;
        } else if (i as f64) > m && term < sum * 1e-17 {
            break;
        }
    }
    (log_scale + sum.ln()).min(0.0)
}

/// Robinson's f(w) for one token.
#[inline]
fn robinson(c: Counts, spam_messages: u64, ham_messages: u64, p: &Params) -> f64 {
    let n = f64::from(c.spam) + f64::from(c.ham);
    if n == 0.0 {
        return p.robx;
    }
    let bad = if spam_messages == 0 {
        0.0
    } else {
        (f64::from(c.spam) / spam_messages as f64).min(1.0)
    };
    let good = if ham_messages == 0 {
        0.0
    } else {
        (f64::from(c.ham) / ham_messages as f64).min(1.0)
    };
    let pw = if bad + good > 0.0 {
        bad / (bad + good)
    } else {
        p.robx
    };
    (p.robs * p.robx + n * pw) / (p.robs + n)
}

/// The natural logarithm of a product of many factors in (0, 1], kept as
/// a mantissa and a binary exponent: one multiplication per factor instead of
/// one logarithm, and no underflow however many factors there are.
struct LnProduct {
    mantissa: f64,
    exponent: i64,
    pending: u32,
}

impl LnProduct {
    fn new() -> Self {
        LnProduct {
            mantissa: 1.0,
            exponent: 0,
            pending: 0,
        }
    }

    /// Multiplies by `x`, which must be in [1e-9, 1].
    #[inline]
    fn mul(&mut self, x: f64) {
        self.mantissa *= x;
        self.pending += 1;
        // 32 factors of at least 1e-9 take a mantissa in [0.5, 1) down to
        // 1e-289 at worst, still a normal number.
        if self.pending == 32 {
            self.normalize();
        }
    }

    /// Moves the binary exponent of the mantissa into `exponent`, leaving a
    /// mantissa in [0.5, 1).
    fn normalize(&mut self) {
        self.pending = 0;
        let bits = self.mantissa.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i64;
        if biased == 0 || biased == 0x7ff {
            // Zero, subnormal or not finite: cannot happen for factors in
            // [1e-9, 1]; leave the value as it is.
            return;
        }
        self.exponent += biased - 1022;
        self.mantissa = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    }

    fn ln(mut self) -> f64 {
        self.normalize();
        self.mantissa.ln() + self.exponent as f64 * core::f64::consts::LN_2
    }
}

/// How many lookups ahead of the current one the table is prefetched.
const PREFETCH_AHEAD: usize = 16;

/// Scores `tokens` against `db`.
pub fn classify(db: &TokenDb, tokens: &Tokens, params: &Params) -> Classification {
    let (ns, nh) = (db.spam_messages(), db.ham_messages());
    let hashes = tokens.hashes();
    // Every token that counts, as (deviation, f, hash, counts); kept only
    // when clues are reported or the strongest tokens are selected.
    let keep = params.clues > 0 || params.max_tokens > 0;
    let mut picked: Vec<(f64, f64, u64, Counts)> = Vec::new();
    let (mut prod_f, mut prod_1f) = (LnProduct::new(), LnProduct::new());
    let mut used = 0usize;
    for &hash in hashes.iter().take(PREFETCH_AHEAD) {
        db.prefetch(hash);
    }
    // The lookups are independent cache misses: prefetching the slots a
    // few tokens ahead lets the CPU overlap them even where the branches
    // of a lookup are mispredicted.
    for (i, &hash) in hashes.iter().enumerate() {
        if let Some(&ahead) = hashes.get(i + PREFETCH_AHEAD) {
            db.prefetch(ahead);
        }
        let counts = db.get(hash);
        if counts.spam == 0 && counts.ham == 0 {
            continue;
        }
        let f = robinson(counts, ns, nh, params).clamp(1e-9, 1.0 - 1e-9);
        let dev = (f - 0.5).abs();
        if dev > params.min_dev {
            prod_f.mul(f);
            prod_1f.mul(1.0 - f);
            used += 1;
            if keep {
                picked.push((dev, f, hash, counts));
            }
        }
    }
    let by_strength = |a: &(f64, f64, u64, Counts), b: &(f64, f64, u64, Counts)| {
        b.0.total_cmp(&a.0).then(a.2.cmp(&b.2))
    };
    if params.max_tokens > 0 && picked.len() > params.max_tokens {
        picked.select_nth_unstable_by(params.max_tokens, by_strength);
        picked.truncate(params.max_tokens);
        // The combination is over the strongest tokens only, in hash order
        // as when all are used.
        picked.sort_unstable_by_key(|p| p.2);
        (prod_f, prod_1f) = (LnProduct::new(), LnProduct::new());
        for &(_, f, _, _) in &picked {
            prod_f.mul(f);
            prod_1f.mul(1.0 - f);
        }
        used = picked.len();
    }
    let score = if used == 0 {
        0.5
    } else {
        let h = chi2q(-2.0 * prod_f.ln(), used);
        let s = chi2q(-2.0 * prod_1f.ln(), used);
        ((1.0 + h - s) / 2.0).clamp(0.0, 1.0)
    };
    let top = if params.clues > 0 {
        let n = params.clues.min(picked.len());
        if n < picked.len() {
            picked.select_nth_unstable_by(n, by_strength);
        }
        picked.truncate(n);
        picked.sort_unstable_by(by_strength);
        picked
    } else {
        Vec::new()
    };
    let dangerous = tokens.dangerous_attachments().first().cloned();
    let verdict = if dangerous.is_some() || score >= params.spam_cutoff {
        Verdict::Spam
    } else if score <= params.ham_cutoff {
        Verdict::Ham
    } else {
        Verdict::Unsure
    };
    Classification {
        verdict,
        score: if dangerous.is_some() { 1.0 } else { score },
        tokens_used: used,
        clues: top
            .into_iter()
            .map(|(_, f, hash, counts)| Clue {
                hash,
                name: tokens.name(hash).map(String::from),
                spamminess: f,
                counts,
            })
            .collect(),
        dangerous_attachment: dangerous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2q_matches_closed_forms() {
        // 2 dof: Q = exp(-x/2).
        assert!((chi2q(3.0, 1) - (-1.5f64).exp()).abs() < 1e-12);
        // 4 dof: Q = exp(-x/2)(1 + x/2).
        assert!((chi2q(5.0, 2) - (-2.5f64).exp() * 3.5).abs() < 1e-12);
        // Mean of chi-square(2k) is 2k: Q near one half there, for big k too.
        let q = chi2q(4000.0, 2000);
        assert!((q - 0.5).abs() < 0.02, "{q}");
        assert!(chi2q(100.0, 2000) > 0.999_999);
        assert!(chi2q(20000.0, 2000) < 1e-100);
    }

    #[test]
    fn ln_product_matches_sum_of_logs() {
        let mut p = LnProduct::new();
        let mut sum = 0.0f64;
        let mut x = 0.37f64;
        for i in 0..5000 {
            // Factors across the whole range, 1e-9 and 1 included.
            let f = match i % 7 {
                0 => 1e-9,
                1 => 1.0 - 1e-9,
                2 => 1.0,
                _ => {
                    x = (x * 3.9 * (1.0 - x)).clamp(1e-9, 1.0);
                    x
                }
            };
            p.mul(f);
            sum += f.ln();
        }
        let got = p.ln();
        assert!((got - sum).abs() <= 1e-9 * sum.abs(), "{got} vs {sum}");
        assert_eq!(LnProduct::new().ln(), 0.0);
    }

    #[test]
    fn status_roundtrip() {
        for (v, s) in [
            (Verdict::Spam, 0.9999),
            (Verdict::Ham, 0.0),
            (Verdict::Unsure, 0.5),
        ] {
            let st = SpamStatus {
                verdict: v,
                score: s,
            };
            assert_eq!(st.to_string().parse::<SpamStatus>(), Ok(st));
        }
        assert!("Maybe, score=1".parse::<SpamStatus>().is_err());
        assert!("Yes, score=7".parse::<SpamStatus>().is_err());
        assert!("Yes".parse::<SpamStatus>().is_err());
    }
}
