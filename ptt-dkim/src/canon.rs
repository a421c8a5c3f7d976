//! Header fields and canonicalization (RFC 6376 §3.4), shared by DKIM and ARC.
//!
//! The body side is streaming: [`BodyHasher`] takes the body in pieces of any
//! size and keeps a fixed amount of state (a SHA-256 state with a 1 KB
//! buffer, and a counter of pending empty lines), so a server hashes while
//! DATA arrives.

use alloc::vec::Vec;

use crate::sha256::{BLOCK, ChainState};
use crate::signature::Canonicalization;
use crate::tag::is_wsp;

/// One header field of a message, borrowed from the header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField<'a> {
    /// The field name as written (before the colon); empty for a line that
    /// has no colon (never selected by `h=`).
    pub name: &'a [u8],
    /// The whole field: `Name:value` with its folding and final CRLF.
    pub raw: &'a [u8],
}

impl<'a> HeaderField<'a> {
    /// The value: everything after the colon, with the final CRLF.
    pub fn value(&self) -> &'a [u8] {
        if self.name.is_empty() {
            return self.raw;
        }
        // The colon right after the name, as nearly every field has it:
        // found without a search (this runs for each field a signature
        // covers).
        if let Some((b':', value)) = self
            .raw
            .get(self.name.len()..)
            .and_then(<[u8]>::split_first)
        {
            return value;
        }
        match memchr::memchr(b':', self.raw) {
            Some(c) => self.raw.get(c + 1..).unwrap_or_default(),
            None => self.raw,
        }
    }

    /// True when the name matches `name`, ignoring ASCII case.
    #[inline]
    pub fn is(&self, name: &str) -> bool {
        !self.name.is_empty() && self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// Splits a header block (CRLF line ends, without the empty line) into
/// fields. A continuation line (starting with SP or HTAB) belongs to the
/// field above; an mbox `From ` line is skipped; a line without a colon is
/// kept as a nameless field.
pub fn split_header_fields(head: &[u8]) -> Vec<HeaderField<'_>> {
    // About one field per 40 bytes: no regrowth for usual header blocks.
    let mut fields: Vec<HeaderField<'_>> = Vec::with_capacity(head.len() / 40 + 4);
    let mut start = 0;
    let mut pos = 0;
    let n = head.len();
    while pos < n {
        // End of this physical line (after its LF, or the end).
        let line_end = memchr::memchr(b'\n', &head[pos..]).map_or(n, |i| pos + i + 1);
        let next_is_continuation = line_end < n && is_wsp(head[line_end]);
        pos = line_end;
        if next_is_continuation {
            continue;
        }
        let raw = &head[start..line_end];
        start = line_end;
        // The name may be followed by WSP before the colon (RFC 5322 obsolete
        // syntax, and the RFC 6376 §3.4.6 example).
        let name = match memchr::memchr(b':', raw).map(|c| trim_wsp_end(&raw[..c])) {
            Some(n) if !n.is_empty() && n.iter().all(|b| (0x21..=0x7e).contains(b)) => n,
            _ if raw.starts_with(b"From ") && fields.is_empty() => continue,
            _ => &raw[..0],
        };
        fields.push(HeaderField { name, raw });
    }
    fields
}

fn trim_wsp_end(s: &[u8]) -> &[u8] {
    let mut end = s.len();
    while end > 0 && is_wsp(s[end - 1]) {
        end -= 1;
    }
    &s[..end]
}

/// Appends the canonical form of one header field (with its final CRLF).
pub fn canonicalize_header(canon: Canonicalization, field: &HeaderField<'_>, out: &mut Vec<u8>) {
    out.reserve(field.raw.len() + 2);
    write_canonical_header(canon, field, true, out);
}

/// Writes the canonical form of one header field to `out`, with its final
/// CRLF when `crlf` (the signature field, last in the data, has none).
fn write_canonical_header(
    canon: Canonicalization,
    field: &HeaderField<'_>,
    crlf: bool,
    out: &mut impl BodySink,
) {
    match canon {
        Canonicalization::Simple => {
            let text = field.raw.strip_suffix(b"\r\n").unwrap_or(field.raw);
            out.put(text);
            if crlf {
                out.put(b"\r\n");
            }
        }
        Canonicalization::Relaxed => {
            // The name in lower case, a stack block at a time.
            for part in field.name.chunks(64) {
                let mut lower = [0u8; 64];
                if let Some(lower) = lower.get_mut(..part.len()) {
                    lower.copy_from_slice(part);
                    lower.make_ascii_lowercase();
                    out.put(lower);
                }
            }
            out.put(b":");
            relaxed_value(field.value(), out);
            if crlf {
                out.put(b"\r\n");
            }
        }
    }
}

/// Relaxed header value: CRLFs removed, WSP runs to one SP, no WSP at the ends.
fn relaxed_value(value: &[u8], out: &mut impl BodySink) {
    let mut wsp = false;
    let mut started = false;
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        match b {
            b' ' | b'\t' => {
                wsp = true;
                i += 1;
            }
            b'\r' if value.get(i + 1) == Some(&b'\n') => i += 2,
            _ => {
                // Content (a CR not before LF too), copied a run at a time:
                // single SPs between other bytes pass unchanged, as in the
                // body ([`relaxed_run_end`]).
                let len = 1 + relaxed_run_end(value.get(i + 1..).unwrap_or_default());
                if wsp && started {
                    out.put(b" ");
                }
                wsp = false;
                started = true;
                // With the rest of the value after it, so that a hash
                // sink can take a short run as one fixed-size copy.
                out.put_prefix(value.get(i..).unwrap_or_default(), len);
                i += len;
            }
        }
    }
}

/// The earlier byte-at-a-time relaxed header value, kept as the reference
/// the run-at-a-time one is checked against.
#[cfg(test)]
fn relaxed_value_reference(value: &[u8], out: &mut Vec<u8>) {
    let mut wsp = false;
    let mut started = false;
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if b == b'\r' && value.get(i + 1) == Some(&b'\n') {
            i += 2;
            continue;
        }
        if is_wsp(b) {
            wsp = true;
        } else {
            if wsp && started {
                out.push(b' ');
            }
            wsp = false;
            started = true;
            out.push(b);
        }
        i += 1;
    }
}

/// The fields that `h=` selects, in `h=` order: each name takes the last
/// not yet used field of that name (RFC 6376 §5.4.2); a name with no field
/// left selects nothing (that is how over-signing works).
pub fn select_signed_headers<'f, 'a>(
    fields: &'f [HeaderField<'a>],
    names: impl IntoIterator<Item = impl AsRef<str>>,
) -> Vec<&'f HeaderField<'a>> {
    let names = names.into_iter();
    let mut out = Vec::with_capacity(names.size_hint().0);
    each_signed_header(fields, names, |f| out.push(f));
    out
}

/// [`select_signed_headers`], each field handed to `take` in `h=` order
/// rather than collected.
fn each_signed_header<'f, 'a>(
    fields: &'f [HeaderField<'a>],
    names: impl IntoIterator<Item = impl AsRef<str>>,
    mut take: impl FnMut(&'f HeaderField<'a>),
) {
    // The fields used so far: bits of a word for a usual header block (no
    // allocation), a vector past 64 fields.
    let mut used_bits = 0u64;
    let mut used_many = if fields.len() > 64 {
        alloc::vec![false; fields.len()]
    } else {
        Vec::new()
    };
    for name in names {
        let name = name.as_ref();
        let is_used = |i: usize, many: &[bool]| match many.get(i) {
            Some(u) => *u,
            None => i < 64 && used_bits & (1 << i) != 0,
        };
        if let Some(i) = (0..fields.len())
            .rev()
            .find(|&i| !is_used(i, &used_many) && fields[i].is(name))
        {
            match used_many.get_mut(i) {
                Some(u) => *u = true,
                None => used_bits |= 1 << i,
            }
            take(&fields[i]);
        }
    }
}

/// The data a header signature covers: the selected fields, canonicalized,
/// then the signature field itself with the value of `b=` deleted (the
/// `b_value` range is relative to the signature field's value) and no final
/// CRLF.
pub fn header_hash_input(
    canon: Canonicalization,
    fields: &[HeaderField<'_>],
    names: impl IntoIterator<Item = impl AsRef<str>>,
    signature_field: &HeaderField<'_>,
    b_value: core::ops::Range<usize>,
) -> Vec<u8> {
    // Canonical fields are never longer than they are written (plus a CRLF
    // for a last field that has none), and each is selected once at most:
    // one allocation.
    let room = fields.iter().map(|f| f.raw.len() + 2).sum::<usize>() + signature_field.raw.len();
    let mut out = Vec::with_capacity(room);
    write_header_hash_input(canon, fields, names, signature_field, b_value, &mut out);
    out
}

/// The SHA-256 of [`header_hash_input`], hashed as it is canonicalized
/// (what Ed25519 signs, RFC 8463, and what an RSA signature's digest is).
pub(crate) fn header_hash(
    canon: Canonicalization,
    fields: &[HeaderField<'_>],
    names: impl IntoIterator<Item = impl AsRef<str>>,
    signature_field: &HeaderField<'_>,
    b_value: core::ops::Range<usize>,
) -> [u8; 32] {
    let mut sink = HashSink::new(None);
    write_header_hash_input(canon, fields, names, signature_field, b_value, &mut sink);
    sink.finalize()
}

/// Writes [`header_hash_input`] to `out`.
fn write_header_hash_input(
    canon: Canonicalization,
    fields: &[HeaderField<'_>],
    names: impl IntoIterator<Item = impl AsRef<str>>,
    signature_field: &HeaderField<'_>,
    b_value: core::ops::Range<usize>,
    out: &mut impl BodySink,
) {
    each_signed_header(fields, names, |field| {
        write_canonical_header(canon, field, true, out);
    });
    let raw = signature_field.raw;
    let value_start = raw.len() - signature_field.value().len();
    let cut =
        (value_start + b_value.start).min(raw.len())..(value_start + b_value.end).min(raw.len());
    if cut.is_empty() {
        // Nothing to blank (the signer's own field ends with an empty b=).
        write_canonical_header(canon, signature_field, false, out);
        return;
    }
    // The field with b='s value taken out, on the stack when it fits: in
    // a buffer sized to it, as clearing a large one costs more than the
    // copy (an Ed25519 signature field is some 350 bytes, an RSA-4096 one
    // about 800).
    let kept = raw.len() - cut.len();
    let (before, after) = (&raw[..cut.start], &raw[cut.end..]);
    let write = |blanked: &mut [u8], out: &mut _| {
        blanked[..before.len()].copy_from_slice(before);
        blanked[before.len()..].copy_from_slice(after);
        let blanked = HeaderField {
            name: signature_field.name,
            raw: blanked,
        };
        write_canonical_header(canon, &blanked, false, out);
    };
    if kept <= 512 {
        write(&mut [0u8; 512][..kept], out);
    } else if kept <= 2048 {
        write(&mut [0u8; 2048][..kept], out);
    } else {
        write(&mut alloc::vec![0u8; kept], out);
    }
}

/// Where canonical body bytes go.
pub trait BodySink {
    /// Takes the next canonical bytes.
    fn put(&mut self, bytes: &[u8]);

    /// Takes `data[..len]` (`len <= data.len()`), the bytes past it being
    /// there to read: a sink may copy a fixed-size block and keep `len`
    /// bytes of it, which is cheaper than a copy of any length.
    #[inline(always)]
    fn put_prefix(&mut self, data: &[u8], len: usize) {
        self.put(data.get(..len).unwrap_or(data));
    }

    /// Takes the bytes that `fill` writes at the start of a window of
    /// [`SINK_WINDOW`] bytes, as many as it returns: a sink with room for a
    /// window lets `fill` write in place.
    #[inline(always)]
    fn put_window(&mut self, fill: impl FnOnce(&mut [u8; SINK_WINDOW]) -> usize)
    where
        Self: Sized,
    {
        put_window_copied(self, fill);
    }
}

/// [`BodySink::put_window`] through a window on the stack, then `put`.
#[inline(always)]
fn put_window_copied(sink: &mut impl BodySink, fill: impl FnOnce(&mut [u8; SINK_WINDOW]) -> usize) {
    let mut window = [0u8; SINK_WINDOW];
    let len = fill(&mut window);
    sink.put(window.get(..len).unwrap_or(&window));
}

/// The size of the window that [`BodySink::put_window`] hands out: a
/// 64-byte block's kept bytes and room for a fixed-size copy of a short
/// run past them.
pub const SINK_WINDOW: usize = 64 + SHORT_COPY;

impl BodySink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Streaming body canonicalization: feed the body in pieces of any size.
#[derive(Debug, Clone, Copy)]
pub struct BodyCanonicalizer {
    canon: Canonicalization,
    pending_crlf: u64,
    pending_wsp: bool,
    cr: bool,
    nonempty: bool,
}

impl BodyCanonicalizer {
    /// A canonicalizer at the start of a body.
    pub fn new(canon: Canonicalization) -> Self {
        BodyCanonicalizer {
            canon,
            pending_crlf: 0,
            pending_wsp: false,
            cr: false,
            nonempty: false,
        }
    }

    #[inline(always)]
    fn content(&mut self, run: &[u8], sink: &mut impl BodySink) {
        if run.is_empty() {
            return;
        }
        self.before_content(sink);
        sink.put(run);
    }

    /// Writes the line ends and the SP held back, as content follows them.
    #[inline(always)]
    fn before_content(&mut self, sink: &mut impl BodySink) {
        while self.pending_crlf > 0 {
            sink.put(b"\r\n");
            self.pending_crlf -= 1;
        }
        if self.pending_wsp {
            sink.put(b" ");
            self.pending_wsp = false;
        }
        self.nonempty = true;
    }

    /// Settles a CR held back from the byte before `next`: with an LF it is
    /// a line end, held back in turn (and a WSP run before it is dropped);
    /// before anything else it is content. Whether `next` was used up.
    #[inline(always)]
    fn settle_cr(&mut self, next: u8, sink: &mut impl BodySink) -> bool {
        self.cr = false;
        if next == b'\n' {
            self.pending_wsp = false;
            self.pending_crlf += 1;
            true
        } else {
            self.content(b"\r", sink);
            false
        }
    }

    /// Canonicalizes the next piece of the body.
    pub fn update(&mut self, data: &[u8], sink: &mut impl BodySink) {
        if self.canon == Canonicalization::Relaxed {
            self.update_relaxed(data, sink);
            return;
        }
        let n = data.len();
        let mut i = 0;
        while i < n {
            if self.cr && self.settle_cr(data[i], sink) {
                i += 1;
                continue;
            }
            // Simple: everything up to the next CR passes unchanged.
            let j = memchr::memchr(b'\r', &data[i..]).map_or(n, |k| i + k);
            self.content(&data[i..j], sink);
            if j >= n {
                break;
            }
            self.cr = true;
            i = j + 1;
        }
    }

    /// Relaxed: 64 bytes at a time where the data has them
    /// ([`Self::relaxed_block`]). The rest of a piece, shorter than that,
    /// passes unchanged in runs that end at the next control byte or SP
    /// ([`relaxed_run_end`], eight bytes at a time); a WSP run becomes one
    /// pending SP, dropped at the end of the line.
    fn update_relaxed(&mut self, data: &[u8], sink: &mut impl BodySink) {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if avx512::available() {
            // SAFETY: the CPU has the features the function is built for.
            #[allow(unsafe_code)]
            unsafe {
                self.update_relaxed_avx512(data, sink)
            };
            return;
        }
        self.update_relaxed_with::<false>(data, sink);
    }

    /// [`Self::update_relaxed`] built for AVX-512 (BW and VBMI2): the
    /// 64-byte steps class their block with one compare per class and
    /// gather its kept bytes with one compress ([`avx512`]). Built for the
    /// SHA extensions too, so that the body hash's rounds are part of the
    /// same loop (every CPU with VBMI2 has them).
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[allow(unsafe_code)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,bmi2,sha,ssse3,sse4.1")]
    unsafe fn update_relaxed_avx512(&mut self, data: &[u8], sink: &mut impl BodySink) {
        self.update_relaxed_with::<true>(data, sink);
    }

    /// The relaxed loop; `AVX512` only where the CPU has been checked
    /// for it.
    #[inline(always)]
    fn update_relaxed_with<const AVX512: bool>(&mut self, data: &[u8], sink: &mut impl BodySink) {
        // The state worked on as a local, so that it stays in registers
        // across the steps, and written back once.
        let mut state = *self;
        state.update_relaxed_steps::<AVX512>(data, sink);
        *self = state;
    }

    #[inline(always)]
    fn update_relaxed_steps<const AVX512: bool>(&mut self, data: &[u8], sink: &mut impl BodySink) {
        let n = data.len();
        let mut i = 0;
        while i < n {
            if self.cr && self.settle_cr(data[i], sink) {
                i += 1;
                continue;
            }
            if !self.cr && n - i >= 64 {
                i += self.relaxed_block::<AVX512>(&data[i..], sink);
                continue;
            }
            let b = data[i];
            if b == b'\r' {
                self.cr = true;
                i += 1;
                continue;
            }
            if is_wsp(b) {
                i += 1;
                while i < n && is_wsp(data[i]) {
                    i += 1;
                }
                self.pending_wsp = true;
                continue;
            }
            // data[i] is content (not WSP nor CR; a bare LF or another
            // control byte passes too), so the run is at least one byte.
            let len = 1 + relaxed_run_end(&data[i + 1..]);
            self.before_content(sink);
            sink.put_prefix(&data[i..], len);
            i += len;
        }
    }

    /// Relaxed, 64 bytes at a time: the first 64 bytes of `data` (it has
    /// them) are classed with SIMD compares into one bit mask per class,
    /// bit `i` standing for `data[i]`, and what the block puts out is
    /// worked out on the masks: line ends (CRLF), WSP runs (the first byte
    /// of a run becomes SP, the rest go; a run before a line end goes
    /// whole), content (everything else, a bare CR or LF too). The kept
    /// bytes are gathered run by run ([`gather`]) into one
    /// [`BodySink::put_window`]. A CR in the last
    /// place is left for the next step (its LF is not in the block), so 63
    /// or 64 bytes are used; their number is returned. The state carried
    /// across is the scalar loop's: line ends and a WSP run held back until
    /// content follows them. `self.cr` is false on entry.
    #[inline(always)]
    fn relaxed_block<const AVX512: bool>(
        &mut self,
        data: &[u8],
        sink: &mut impl BodySink,
    ) -> usize {
        let block: &[u8; 64] = match data.get(..64).and_then(|b| b.try_into().ok()) {
            Some(block) => block,
            // The caller hands over 64 bytes or more.
            None => return 0,
        };
        let classes = ByteClasses::of::<AVX512>(block);
        // The bytes this step covers: a CR in the last place is left out.
        let (len, all) = if classes.cr >> 63 != 0 {
            (63, u64::MAX >> 1)
        } else {
            (64, u64::MAX)
        };
        let wsp = (classes.sp | classes.tab) & all;
        let crlf = classes.cr & (classes.lf >> 1) & all;
        let line_ends = crlf | (crlf << 1);
        let content = all & !wsp & !line_ends;
        // The first byte of each WSP run, and the byte after each run that
        // ends inside the block (a run reaching the end carries out).
        let run_starts = wsp & !(wsp << 1);
        let after_runs = wsp.wrapping_add(run_starts) & all;
        // Runs ended by a line end go whole (of a run only its first byte
        // could be kept, so only those are marked).
        let dropped = ended_runs::<AVX512>(wsp, run_starts, after_runs & crlf, after_runs);
        // A run reaching the end of the block is held back: what follows
        // it decides.
        let held = if wsp >> (len - 1) & 1 != 0 {
            run_before(wsp, len - 1) | 1 << (len - 1)
        } else {
            0
        };
        // A WSP run held back before the block: its SP goes out when content
        // ends it here, and nothing of it when a line end does.
        let first_other = (all & !wsp).trailing_zeros();
        let lead_sp = self.pending_wsp && content.checked_shr(first_other).unwrap_or(0) & 1 != 0;
        let continued = u64::from(self.pending_wsp) & wsp;
        let kept_sp = run_starts & !dropped & !held & !continued;
        let solid = content | kept_sp;
        self.pending_wsp = lead_sp;
        if solid == 0 {
            // Nothing but line ends and WSP: all held back.
            self.pending_crlf += u64::from(crlf.count_ones());
            self.pending_wsp = held != 0;
            return len as usize;
        }
        let last = 63 - solid.leading_zeros();
        let upto_last = u64::MAX >> (63 - last);
        self.before_content(sink);
        let keep = (solid | line_ends) & upto_last;
        let tabs = kept_sp & classes.tab;
        sink.put_window(|out| gather::<AVX512>(data, block, keep, tabs, out));
        self.pending_crlf = u64::from((crlf & !upto_last).count_ones());
        self.pending_wsp = held != 0;
        len as usize
    }

    /// Ends the body: trailing empty lines dropped, one CRLF at the end
    /// (`simple` turns an empty body into CRLF, `relaxed` leaves it empty).
    pub fn finish(&mut self, sink: &mut impl BodySink) {
        if self.cr {
            self.cr = false;
            self.content(b"\r", sink);
        }
        self.pending_wsp = false;
        self.pending_crlf = 0;
        if self.nonempty || self.canon == Canonicalization::Simple {
            sink.put(b"\r\n");
        }
    }
}

/// The size of the fixed copy that [`HashSink`]'s `put_prefix` and
/// [`gather`] use for a short run: most relaxed runs (words, phrases) are
/// shorter.
const SHORT_COPY: usize = 32;

/// Writes the bytes of `data`'s first 64 whose bits are set in `keep` to
/// the start of `out`, a TAB among them (its bit set in `tabs`) as SP, and
/// returns their number. A run of kept bytes is copied by one copy of
/// [`SHORT_COPY`] bytes where `data` reaches that far; a longer run, or
/// one at the end of the data, is copied exactly. `block` is `data`'s
/// first 64 bytes, for the AVX-512 path.
#[inline(always)]
fn gather<const AVX512: bool>(
    data: &[u8],
    block: &[u8; 64],
    keep: u64,
    tabs: u64,
    out: &mut [u8; SINK_WINDOW],
) -> usize {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if AVX512 {
        // SAFETY: `AVX512` is only set on a CPU that has been checked.
        #[allow(unsafe_code)]
        return unsafe { avx512::gather(block, keep, tabs, out) };
    }
    let _ = block;
    let mut pos = 0;
    let mut rest = keep;
    while rest != 0 {
        let start = rest.trailing_zeros();
        let run = (!(rest >> start)).trailing_zeros();
        let (from, to) = (start as usize, (start + run) as usize);
        // Written out, not shared with `put_prefix`: a helper over
        // open-ended slices measured 0.1-0.2 us slower on the bench body.
        match (
            data.get(from..from + SHORT_COPY),
            out.get_mut(pos..pos + SHORT_COPY),
        ) {
            (Some(src), Some(dst)) if to - from <= SHORT_COPY => dst.copy_from_slice(src),
            _ => {
                if let (Some(src), Some(dst)) =
                    (data.get(from..to), out.get_mut(pos..pos + (to - from)))
                {
                    dst.copy_from_slice(src);
                }
            }
        }
        pos += run as usize;
        rest &= !((u64::MAX >> (64 - run)) << start);
    }
    // A kept TAB (the first byte of its run) becomes SP; its place in the
    // output is the number of kept bytes before it.
    let mut tabs = tabs;
    while tabs != 0 {
        let at = (keep & ((1u64 << tabs.trailing_zeros()) - 1)).count_ones() as usize;
        if let Some(b) = out.get_mut(at) {
            *b = b' ';
        }
        tabs &= tabs - 1;
    }
    pos
}

/// The first bytes of the WSP runs that end just below a bit of `ended`
/// (a subset of `after_runs`, the bytes that end the runs starting at
/// `run_starts`). With BMI2 (the AVX-512 path) the k-th run start is
/// paired with the k-th run end by a bit extract and deposit; otherwise
/// run by run.
#[inline(always)]
fn ended_runs<const AVX512: bool>(wsp: u64, run_starts: u64, ended: u64, after_runs: u64) -> u64 {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if AVX512 {
        // SAFETY: `AVX512` is only set on a CPU that has been checked
        // (BMI2 with it).
        #[allow(unsafe_code)]
        return unsafe { avx512::ended_runs(run_starts, ended, after_runs) };
    }
    let _ = after_runs;
    let mut dropped = 0u64;
    let mut ended = ended;
    while ended != 0 {
        let end = ended.trailing_zeros();
        dropped |= run_before(wsp, end);
        ended &= ended - 1;
    }
    dropped & run_starts
}

/// The bits of the WSP run that ends just below bit `end` (`end` < 64):
/// from the highest non-WSP bit below `end` (exclusive) up to `end`
/// (exclusive).
#[inline(always)]
fn run_before(wsp: u64, end: u32) -> u64 {
    let below = (1u64 << end) - 1;
    let other = !wsp & below;
    let start = if other == 0 {
        0
    } else {
        64 - other.leading_zeros()
    };
    below & !((1u64 << start) - 1)
}

/// Bit masks of the SP, TAB, CR and LF bytes of the first 64 bytes of a
/// block (bytes it lacks count in no class).
struct ByteClasses {
    sp: u64,
    tab: u64,
    cr: u64,
    lf: u64,
}

impl ByteClasses {
    #[inline(always)]
    fn of<const AVX512: bool>(block: &[u8; 64]) -> Self {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if AVX512 {
            // SAFETY: `AVX512` is only set on a CPU that has been checked.
            #[allow(unsafe_code)]
            return unsafe { avx512::classes(block) };
        }
        use wide::u8x16;
        let mut classes = ByteClasses {
            sp: 0,
            tab: 0,
            cr: 0,
            lf: 0,
        };
        for (k, chunk) in block.chunks_exact(16).take(4).enumerate() {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(chunk);
            let v = u8x16::new(bytes);
            let mask = |b: u8| u64::from(v.simd_eq(u8x16::splat(b)).to_bitmask()) << (16 * k);
            classes.sp |= mask(b' ');
            classes.tab |= mask(b'\t');
            classes.cr |= mask(b'\r');
            classes.lf |= mask(b'\n');
        }
        classes
    }
}

/// The 64-byte relaxed step's two vector parts on AVX-512 (BW for the
/// compares into bit masks, VBMI2 for the compress), chosen at run time:
/// with the SHA extensions' rounds (`sha256`), the places in ptt-dkim with
/// `unsafe` (the intrinsics' loads and stores, and calls to functions
/// built for features the CPU was checked for).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[allow(unsafe_code)]
mod avx512 {
    use core::arch::x86_64::{
        __m512i, _mm512_cmpeq_epi8_mask, _mm512_loadu_si512, _mm512_mask_blend_epi8,
        _mm512_maskz_compress_epi8, _mm512_set1_epi8, _mm512_storeu_si512, _pdep_u64, _pext_u64,
    };

    use super::{ByteClasses, SINK_WINDOW};

    /// Whether this CPU has the features [`classes`], [`gather`] and
    /// [`ended_runs`] use.
    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("bmi2")
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vbmi2")
            // For the body hash's rounds, built into the same loop.
            && std::is_x86_feature_detected!("sha")
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn load(block: &[u8; 64]) -> __m512i {
        // SAFETY: 64 readable bytes; the load is unaligned.
        unsafe { _mm512_loadu_si512(block.as_ptr().cast()) }
    }

    /// [`ByteClasses::of`]: one compare per class.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn classes(block: &[u8; 64]) -> ByteClasses {
        let v = load(block);
        let class = |b: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b as i8));
        ByteClasses {
            sp: class(b' '),
            tab: class(b'\t'),
            cr: class(b'\r'),
            lf: class(b'\n'),
        }
    }

    /// [`super::ended_runs`]: the runs' ends are in the order of their
    /// starts, so which ends are line ends, gathered (`pext`), lands on
    /// the matching starts (`pdep`); a run reaching the block's end has no
    /// end here and is last.
    #[inline]
    #[target_feature(enable = "bmi2")]
    pub(super) fn ended_runs(run_starts: u64, ended: u64, after_runs: u64) -> u64 {
        _pdep_u64(_pext_u64(ended, after_runs), run_starts)
    }

    /// [`super::gather`]: TABs to SP by a blend, the kept bytes moved
    /// together by one compress, 64 bytes stored at the window's start.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2")]
    pub(super) fn gather(
        block: &[u8; 64],
        keep: u64,
        tabs: u64,
        out: &mut [u8; SINK_WINDOW],
    ) -> usize {
        let v = _mm512_mask_blend_epi8(tabs, load(block), _mm512_set1_epi8(b' ' as i8));
        let kept = _mm512_maskz_compress_epi8(keep, v);
        // SAFETY: the window has at least 64 writable bytes; the store is
        // unaligned.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), kept) };
        keep.count_ones() as usize
    }
}

/// 0x80 in exactly the bytes of `word` below 0x21 (SP, TAB, CR, LF and the
/// other control bytes).
#[inline(always)]
fn bytes_below_0x21(word: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte under 0x80 keeps its high bit after `| 0x80` minus 0x21 only
    // when it is at least 0x21; no byte borrows from the next. Bytes of
    // 0x80 and above are excluded by `| word`.
    !(((word | HIGH) - 0x2121_2121_2121_2121) | word) & HIGH
}

/// Whether a relaxed run breaks at a byte: any control byte or SP, except
/// an SP followed by a byte above SP (a single SP between words passes
/// unchanged). `next` is `None` at the end of the data, where an SP may
/// start a WSP run that the next piece continues.
#[inline(always)]
fn breaks_run(byte: u8, next: Option<u8>) -> bool {
    byte < 0x21 && (byte != b' ' || next.is_none_or(|c| c < 0x21))
}

/// Where a relaxed run that continues with `data[0]` ends: the first byte
/// for which [`breaks_run`] holds. Such a byte is WSP (which becomes one
/// pending SP), CR (perhaps a line end), or a rare other control byte that
/// the caller passes as content. Eight bytes at a time.
#[inline(always)]
fn relaxed_run_end(data: &[u8]) -> usize {
    const TOP: u64 = 0x80 << 56;
    let n = data.len();
    let mut base = 0;
    for chunk in data.chunks_exact(8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(bytes);
        let low = bytes_below_0x21(word);
        // Among the bytes below 0x21 only SP has bit 5 set; `<< 2` moves
        // each byte's bit 5 to its bit 7.
        let sp = low & (word << 2);
        // An SP breaks the run when the byte after it is low too; for the
        // last byte of the word, that is the next byte (or the end).
        let next_low = data.get(base + 8).is_none_or(|&c| c < 0x21);
        let brk = (low ^ sp) | (sp & (low >> 8)) | (sp & TOP & (u64::from(next_low) << 63));
        if brk != 0 {
            return base + (brk.trailing_zeros() / 8) as usize;
        }
        base += 8;
    }
    while base < n {
        if breaks_run(data[base], data.get(base + 1).copied()) {
            return base;
        }
        base += 1;
    }
    n
}

/// The body hash once the body has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyHash {
    /// SHA-256 of the canonical body (up to `l=` when a limit was set).
    pub hash: [u8; 32],
    /// Length of the whole canonical body, hashed or not.
    pub canonical_len: u64,
}

/// Canonical bytes are collected here and compressed a block at a time, a
/// block behind ([`HASH_STEP`], [`HASH_LAG`]), as the canonicalization goes
/// on, so that it runs beside the hash rounds (the two are independent
/// work, and the rounds alone leave most of the CPU idle).
const HASH_CHUNK: usize = 1024;

/// How many bytes are compressed at a time: one block measured best on the
/// bench body (with the SHA extensions a call costs only the state's load
/// and store, kept in the rounds' lane order; the rounds of more blocks at
/// once fill the CPU's window of instructions in flight and leave the
/// canonicalization no room to run beside them: two blocks cost 4% more,
/// four 20%).
const HASH_STEP: usize = BLOCK;

/// How far the compression stays behind the canonical bytes written. The
/// blocks of a step were written by the windows of several steps, so a
/// load of their words finds no one store to forward from and waits for
/// those stores to reach the cache, which is after every instruction
/// before them has finished, the rounds of the step before included. The
/// bytes of the step before the last were written before those rounds
/// began: compressing them leaves no gap between the rounds of two steps.
/// Measured on the bench body (100 KB): 36% over SHA-256 alone without
/// the lag, 4% with one block of it (more is no better).
const HASH_LAG: usize = BLOCK;

struct HashSink {
    /// The SHA-256 state after the blocks compressed so far.
    state: ChainState,
    /// Bytes compressed into `state`.
    hashed: u64,
    limit: Option<u64>,
    /// Canonical bytes counted before what waits in `buf` (hashed, or past
    /// `l=`): the fast paths only move `len`.
    before: u64,
    // Inline, so that a message costs no allocation for it.
    buf: [u8; HASH_CHUNK],
    len: usize,
    /// The bytes at the start of `buf` already compressed (whole blocks,
    /// at most `len`).
    compressed: usize,
}

impl HashSink {
    fn new(limit: Option<u64>) -> Self {
        HashSink {
            state: ChainState::new(),
            hashed: 0,
            limit,
            before: 0,
            buf: [0; HASH_CHUNK],
            len: 0,
            compressed: 0,
        }
    }

    /// Compresses the whole blocks waiting in the buffer and moves the
    /// rest (under 64 bytes) to its start.
    #[inline(always)]
    fn flush(&mut self) {
        let Some(waiting) = self.buf.get(self.compressed..self.len) else {
            return;
        };
        let done = self.compressed + self.state.compress(waiting);
        self.hashed += (done - self.compressed) as u64;
        self.compressed = 0;
        if done == 0 {
            return;
        }
        // The rest is under a block: one fixed-size copy where the buffer
        // reaches that far.
        if let Some(rest) = self.buf.get(done..done + BLOCK) {
            // Through a local, so that it is two vector moves rather than
            // a call to memmove (the ranges may overlap).
            let mut moved = [0u8; BLOCK];
            moved.copy_from_slice(rest);
            self.buf[..BLOCK].copy_from_slice(&moved);
        } else {
            self.buf.copy_within(done..self.len, 0);
        }
        self.len -= done;
        self.before += done as u64;
    }

    /// Compresses the next [`HASH_STEP`] bytes once [`HASH_LAG`] more
    /// follow them.
    #[inline(always)]
    fn step(&mut self) {
        if self.len - self.compressed < HASH_STEP + HASH_LAG {
            return;
        }
        if let Some(step) = self.buf.get(self.compressed..self.compressed + HASH_STEP) {
            let done = self.state.compress(step);
            self.compressed += done;
            self.hashed += done as u64;
        }
    }

    /// Canonical bytes so far, hashed or not.
    fn total(&self) -> u64 {
        self.before + self.len as u64
    }

    /// The hash: the bytes left in the buffer, padded with a 1 bit, zeros
    /// and the length in bits (FIPS 180-4 §5.1.1).
    // By reference: the sink is over a kilobyte, and a move is a copy.
    fn finalize(&mut self) -> [u8; 32] {
        self.flush();
        let total = self.hashed + self.len as u64;
        let rest = self.buf.get(..self.len).unwrap_or(&[]);
        self.state.finalize(rest, total)
    }
}

impl BodySink for HashSink {
    #[inline(always)]
    fn put_window(&mut self, fill: impl FnOnce(&mut [u8; SINK_WINDOW]) -> usize) {
        let Some(window) = self.window() else {
            put_window_copied(self, fill);
            return;
        };
        let len = fill(window).min(SINK_WINDOW);
        self.len += len;
        self.step();
    }

    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        // The usual case: no l=, room in the buffer.
        if self.limit.is_none()
            && let Some(room) = self.buf.get_mut(self.len..self.len + bytes.len())
        {
            room.copy_from_slice(bytes);
            self.len += bytes.len();
            return;
        }
        self.put_slow(bytes);
    }

    #[inline(always)]
    fn put_prefix(&mut self, data: &[u8], len: usize) {
        // Short runs (most relaxed runs are words and phrases) as one
        // fixed-size copy when the data and the buffer have room for it.
        if self.limit.is_none()
            && len <= SHORT_COPY
            && let Some(block) = data.get(..SHORT_COPY)
            && let Some(room) = self.buf.get_mut(self.len..self.len + SHORT_COPY)
        {
            room.copy_from_slice(block);
            self.len += len;
            return;
        }
        self.put(data.get(..len).unwrap_or(data));
    }
}

impl HashSink {
    /// The window of [`BodySink::put_window`] in the buffer, flushing it
    /// first when it lacks the room; `None` with an `l=` limit.
    #[inline(always)]
    fn window(&mut self) -> Option<&mut [u8; SINK_WINDOW]> {
        if self.limit.is_some() {
            return None;
        }
        if self.len + SINK_WINDOW > HASH_CHUNK {
            self.flush();
        }
        self.buf
            .get_mut(self.len..self.len + SINK_WINDOW)?
            .try_into()
            .ok()
    }

    #[inline(never)]
    fn put_slow(&mut self, bytes: &[u8]) {
        let take = match self.limit {
            Some(limit) => {
                let left = limit.saturating_sub(self.total());
                usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()))
            }
            None => bytes.len(),
        };
        let Some(mut part) = bytes.get(..take) else {
            self.before += bytes.len() as u64;
            return;
        };
        // Past the limit: counted, not hashed.
        self.before += (bytes.len() - part.len()) as u64;
        while !part.is_empty() {
            if self.len == 0 && part.len() >= BLOCK {
                // Whole blocks go to the hash without the copy.
                let done = self.state.compress(part);
                self.hashed += done as u64;
                self.before += done as u64;
                part = part.get(done..).unwrap_or(&[]);
                continue;
            }
            let room = HASH_CHUNK - self.len;
            let n = room.min(part.len());
            if let (Some(dst), Some(src)) =
                (self.buf.get_mut(self.len..self.len + n), part.get(..n))
            {
                dst.copy_from_slice(src);
            }
            self.len += n;
            part = part.get(n..).unwrap_or(&[]);
            if self.len == HASH_CHUNK {
                self.flush();
            }
        }
    }
}

/// Streaming SHA-256 body hash over a canonicalized body, with an optional
/// `l=` limit (bytes past it are counted, not hashed).
///
/// ```
/// use ptt_dkim::{BodyHasher, Canonicalization};
/// let mut h = BodyHasher::new(Canonicalization::Relaxed, None);
/// h.update(b"Hi.  \r\n\r\nWe lost");
/// h.update(b" the game.\r\n\r\n\r\n");
/// let once = {
///     let mut one = BodyHasher::new(Canonicalization::Relaxed, None);
///     one.update(b"Hi.\r\n\r\nWe lost the game.\r\n");
///     one.finish()
/// };
/// assert_eq!(h.finish(), once);
/// ```
pub struct BodyHasher {
    canon: BodyCanonicalizer,
    sink: HashSink,
}

impl core::fmt::Debug for BodyHasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BodyHasher")
            .field("canon", &self.canon)
            .field("limit", &self.sink.limit)
            .field("total", &self.sink.total())
            .finish()
    }
}

impl BodyHasher {
    /// A hasher for a body canonicalized with `canon`, hashing at most
    /// `limit` canonical bytes.
    pub fn new(canon: Canonicalization, limit: Option<u64>) -> Self {
        BodyHasher {
            canon: BodyCanonicalizer::new(canon),
            sink: HashSink::new(limit),
        }
    }

    /// Adds the next piece of the body.
    pub fn update(&mut self, data: &[u8]) {
        self.canon.update(data, &mut self.sink);
    }

    /// Ends the body and returns the hash.
    pub fn finish(mut self) -> BodyHash {
        self.finish_in_place()
    }

    /// [`Self::finish`] without moving the hasher (over a kilobyte); it is
    /// not to be used after.
    pub(crate) fn finish_in_place(&mut self) -> BodyHash {
        self.canon.finish(&mut self.sink);
        let canonical_len = self.sink.total();
        BodyHash {
            hash: self.sink.finalize(),
            canonical_len,
        }
    }
}

/// The canonical form of a whole body at once (for tests and tools).
pub fn canonicalize_body(canon: Canonicalization, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2);
    let mut c = BodyCanonicalizer::new(canon);
    c.update(body, &mut out);
    c.finish(&mut out);
    out
}

/// Turns bare LF line ends into CRLF, streaming (for messages read from
/// Unix files; SMTP DATA is CRLF already). A CR already before an LF is kept.
#[derive(Debug, Clone, Default)]
pub struct CrlfNormalizer {
    last_cr: bool,
}

impl CrlfNormalizer {
    /// A normalizer at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `data` to `out` with every bare LF turned into CRLF.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.reserve(data.len() + data.len() / 32);
        let mut start = 0;
        for i in memchr::memchr_iter(b'\n', data) {
            let prev_cr = if i == 0 {
                self.last_cr
            } else {
                data[i - 1] == b'\r'
            };
            out.extend_from_slice(&data[start..i]);
            if !prev_cr {
                out.push(b'\r');
            }
            start = i;
        }
        out.extend_from_slice(&data[start..]);
        if let Some(&last) = data.last() {
            self.last_cr = last == b'\r';
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Canonicalization::{Relaxed, Simple};

    #[test]
    fn rfc6376_section_3_4_6_example() {
        let head = b"A: X\r\nB : Y\t\r\n\tZ  \r\n";
        let fields = split_header_fields(head);
        assert_eq!(fields.len(), 2);
        let mut out = Vec::new();
        for f in &fields {
            canonicalize_header(Relaxed, f, &mut out);
        }
        assert_eq!(out, b"a:X\r\nb:Y Z\r\n");
        let mut simple = Vec::new();
        for f in &fields {
            canonicalize_header(Simple, f, &mut simple);
        }
        assert_eq!(simple, head);
        let body = b" C \r\nD \t E\r\n\r\n\r\n";
        assert_eq!(canonicalize_body(Relaxed, body), b" C\r\nD E\r\n");
        assert_eq!(canonicalize_body(Simple, body), b" C \r\nD \t E\r\n");
    }

    /// A field's value starts after its colon, with or without whitespace
    /// between name and colon; a line without a colon is all value.
    #[test]
    fn field_values() {
        let head = b"Subject: a:b\r\nTo :x\r\nX-Y\t:\r\n z\r\nno colon\r\n";
        let fields = split_header_fields(head);
        let got: Vec<(&[u8], &[u8])> = fields.iter().map(|f| (f.name, f.value())).collect();
        let want: [(&[u8], &[u8]); 4] = [
            (b"Subject", b" a:b\r\n"),
            (b"To", b"x\r\n"),
            (b"X-Y", b"\r\n z\r\n"),
            (b"", b"no colon\r\n"),
        ];
        assert_eq!(got, want);
    }

    /// The signature field enters the header hash with `b=`'s value cut
    /// out, whatever its size (the cut field is built on the stack up to
    /// 512 bytes, then up to 2 KB, then on the heap).
    #[test]
    fn signature_field_is_hashed_without_b_at_every_size() {
        for b_len in [0usize, 4, 300, 460, 470, 1900, 2000, 5000] {
            let b: String = (0..b_len)
                .map(|i| if i % 70 == 69 { ' ' } else { 'A' })
                .collect();
            let field = format!(
                "DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=s;\r\n\th=from; bh=AAAA; b={b}\r\n"
            );
            let head = format!("From: a@a.test\r\n{field}");
            let fields = split_header_fields(head.as_bytes());
            let sig = fields[1];
            let tags = crate::parse_tag_list(sig.value()).unwrap();
            let span = tags
                .iter()
                .find(|t| t.name == "b")
                .unwrap()
                .full_span
                .clone();
            for canon in [Relaxed, Simple] {
                let got = header_hash_input(canon, &fields, ["from"], &sig, span.clone());
                let blanked = field.replacen(&format!("b={b}\r\n"), "b=\r\n", 1);
                let blanked_fields = split_header_fields(blanked.as_bytes());
                let mut want = Vec::new();
                canonicalize_header(canon, &fields[0], &mut want);
                canonicalize_header(canon, &blanked_fields[0], &mut want);
                want.truncate(want.len() - 2);
                assert_eq!(got, want, "{b_len} {canon:?}");
            }
        }
    }

    /// The run-at-a-time relaxed value equals the byte-at-a-time one on
    /// every string over an alphabet of the bytes that matter.
    #[test]
    fn relaxed_value_equals_reference() {
        let alphabet = [b'a', b' ', b'\t', b'\r', b'\n', b':'];
        for len in 0..=6u32 {
            for n in 0..alphabet.len().pow(len) {
                let mut k = n;
                let value: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[k % alphabet.len()];
                        k /= alphabet.len();
                        b
                    })
                    .collect();
                let (mut fast, mut slow) = (b"x:".to_vec(), b"x:".to_vec());
                relaxed_value(&value, &mut fast);
                relaxed_value_reference(&value, &mut slow);
                assert_eq!(fast, slow, "{value:?}");
            }
        }
        // Longer values, so that runs go through the eight-byte scanner:
        // each edge byte at each place of a 20-byte value of words, single
        // and double SPs and a fold.
        let base = b"ab cd  ef\r\n\tgh ij kl";
        for b in [
            0x00, 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xc3, 0xff,
        ] {
            for pos in 0..base.len() {
                let mut value = base.to_vec();
                value[pos] = b;
                let (mut fast, mut slow) = (Vec::new(), Vec::new());
                relaxed_value(&value, &mut fast);
                relaxed_value_reference(&value, &mut slow);
                assert_eq!(fast, slow, "{value:?}");
            }
        }
    }

    #[test]
    fn relaxed_header() {
        let fields = split_header_fields(b"SUBJect:  Is \t dinner\r\n  ready? \r\n");
        let mut out = Vec::new();
        canonicalize_header(Relaxed, &fields[0], &mut out);
        assert_eq!(out, b"subject:Is dinner ready?\r\n");
    }

    #[test]
    fn relaxed_run_end_equals_naive() {
        let naive = |d: &[u8]| {
            (0..d.len())
                .find(|&k| breaks_run(d[k], d.get(k + 1).copied()))
                .unwrap_or(d.len())
        };
        // Every string over {a, SP, TAB, CR} up to 11 bytes, at offsets 0..3
        // so that breaks fall inside words, across words and in the tail.
        let alphabet = [b'a', b' ', b'\t', b'\r'];
        for len in 0..12u32 {
            for code in 0u32..(1 << (2 * len)) {
                let s: Vec<u8> = (0..len)
                    .map(|k| alphabet[(code >> (2 * k) & 3) as usize])
                    .collect();
                for off in 0..3.min(s.len() + 1) {
                    let d = &s[off..];
                    assert_eq!(relaxed_run_end(d), naive(d), "{d:?}");
                }
            }
        }
        // Each byte value alone and beside SP, at every position of a word.
        for b in 0..=255u8 {
            for pos in 0..10 {
                let mut d = vec![b'a'; 12];
                d[pos] = b;
                assert_eq!(relaxed_run_end(&d), naive(&d), "{d:?}");
                d[pos + 1] = b' ';
                assert_eq!(relaxed_run_end(&d), naive(&d), "{d:?}");
                d[pos] = b' ';
                d[pos + 1] = b;
                assert_eq!(relaxed_run_end(&d), naive(&d), "{d:?}");
            }
        }
        let long = b"\xa0bc d\xc3\xa9f ghijklm nopq rstuvw\t  x";
        assert_eq!(relaxed_run_end(long), naive(long));
    }

    /// A xorshift generator for the randomized tests (fixed seeds, so a
    /// failure comes back).
    struct TestRng(u64);

    impl TestRng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// `len` bytes drawn from `alphabet`.
        fn body(&mut self, len: usize, alphabet: &[u8]) -> Vec<u8> {
            (0..len)
                .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
                .collect()
        }
    }

    /// The portable 64-byte step and the AVX-512 one (where this CPU has
    /// it) give the same canonical body, on bodies made of the bytes that
    /// matter (WSP, CR, LF, content) in every mix, fed in pieces of every
    /// size around a block.
    #[test]
    fn portable_and_vector_steps_agree() {
        let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let len = (rng.next() % 400) as usize;
            let body = rng.body(len, b"  \t\r\nab\r\n");
            let piece = 1 + (round % 130);
            let run = |vector: bool| {
                let mut out = Vec::new();
                let mut c = BodyCanonicalizer::new(Relaxed);
                for part in body.chunks(piece) {
                    if vector {
                        c.update(part, &mut out);
                    } else {
                        c.update_relaxed_with::<false>(part, &mut out);
                    }
                }
                c.finish(&mut out);
                out
            };
            let portable = run(false);
            assert_eq!(portable, run(true), "{body:?} in pieces of {piece}");
            let mut whole = Vec::new();
            let mut c = BodyCanonicalizer::new(Relaxed);
            c.update_relaxed_with::<false>(&body, &mut whole);
            c.finish(&mut whole);
            assert_eq!(portable, whole, "{body:?}");
        }
    }

    /// The portable 64-byte step into the hash sink (as on a CPU with the
    /// SHA extensions but not AVX-512: the rounds out of line) gives
    /// SHA-256 of the canonical body, in pieces of every size around a
    /// block.
    #[test]
    fn portable_steps_into_the_hash_sink() {
        use sha2::{Digest as _, Sha256};
        let mut rng = TestRng(0x51_7cc1_b727_220a);
        for round in 0..500 {
            let len = (rng.next() % 3000) as usize;
            let body = rng.body(len, b"  \t\r\nabcdefgh\r\n");
            let piece = 1 + (round % 200);
            let mut c = BodyCanonicalizer::new(Relaxed);
            let mut sink = HashSink::new(None);
            for part in body.chunks(piece) {
                c.update_relaxed_with::<false>(part, &mut sink);
            }
            c.finish(&mut sink);
            let want: [u8; 32] = Sha256::digest(canonicalize_body(Relaxed, &body)).into();
            assert_eq!(sink.finalize(), want, "{len} bytes in pieces of {piece}");
        }
    }

    /// The hash sink's own blocks and padding give SHA-256 of the
    /// canonical body (up to `l=`), whatever the body's length and however
    /// it is cut into pieces.
    #[test]
    fn body_hash_is_sha256_of_the_canonical_body() {
        use sha2::{Digest as _, Sha256};
        let mut rng = TestRng(0x2545_f491_4f6c_dd1d);
        for len in (0..300).chain([1023, 1024, 1025, 4000]) {
            let body = rng.body(len, b"ab c\t\r\nxyz  \r\n");
            for canon in [Simple, Relaxed] {
                let canonical = canonicalize_body(canon, &body);
                for limit in [
                    None,
                    Some(0),
                    Some(55),
                    Some(64),
                    Some(119),
                    Some(1_000_000),
                ] {
                    let mut h = BodyHasher::new(canon, limit);
                    let mut rest = &body[..];
                    while !rest.is_empty() {
                        let take = (rng.next() % 200) as usize % (rest.len() + 1);
                        h.update(&rest[..take]);
                        rest = &rest[take..];
                    }
                    let got = h.finish();
                    let hashed =
                        limit.map_or(canonical.len(), |l| (l as usize).min(canonical.len()));
                    let want: [u8; 32] = Sha256::digest(&canonical[..hashed]).into();
                    assert_eq!(got.hash, want, "{canon:?} len {len} limit {limit:?}");
                    assert_eq!(got.canonical_len, canonical.len() as u64);
                }
            }
        }
    }

    #[test]
    fn empty_bodies() {
        assert_eq!(canonicalize_body(Simple, b""), b"\r\n");
        assert_eq!(canonicalize_body(Relaxed, b""), b"");
        assert_eq!(canonicalize_body(Simple, b"\r\n\r\n"), b"\r\n");
        assert_eq!(canonicalize_body(Relaxed, b"  \r\n\t\r\n"), b"");
        assert_eq!(canonicalize_body(Simple, b"abc"), b"abc\r\n");
        assert_eq!(canonicalize_body(Relaxed, b"abc  "), b"abc\r\n");
        assert_eq!(canonicalize_body(Relaxed, b"a\rb\r"), b"a\rb\r\r\n");
        assert_eq!(canonicalize_body(Relaxed, b"a \rb"), b"a \rb\r\n");
    }

    #[test]
    fn selection_bottom_up_and_oversigning() {
        let head = b"From: a\r\nX: 1\r\nX: 2\r\nTo: b\r\n";
        let fields = split_header_fields(head);
        let sel = select_signed_headers(&fields, ["x", "x", "x", "from"]);
        let raws: Vec<&[u8]> = sel.iter().map(|f| f.raw).collect();
        assert_eq!(raws, vec![&b"X: 2\r\n"[..], b"X: 1\r\n", b"From: a\r\n"]);
    }

    /// Selection past 64 fields (where the used set leaves the word for a
    /// vector) equals a plain bottom-up search.
    #[test]
    fn selection_past_64_fields() {
        let head: Vec<u8> = (0..100)
            .flat_map(|k| format!("{}: {k}\r\n", if k % 3 == 0 { "Y" } else { "X" }).into_bytes())
            .collect();
        let fields = split_header_fields(&head);
        for names in [vec!["x"; 70], vec!["y"; 40], ["x", "y"].repeat(50)] {
            let mut used = vec![false; fields.len()];
            let mut naive = Vec::new();
            for name in &names {
                if let Some(i) = (0..fields.len())
                    .rev()
                    .find(|&i| !used[i] && fields[i].is(name))
                {
                    used[i] = true;
                    naive.push(fields[i].raw);
                }
            }
            let sel: Vec<&[u8]> = select_signed_headers(&fields, &names)
                .iter()
                .map(|f| f.raw)
                .collect();
            assert_eq!(sel, naive);
        }
    }

    /// The hash input written to a sink equals the one built the earlier
    /// way (selected fields canonicalized into a vector, the signature
    /// field blanked in a copy, the last CRLF cut), and the hash made as
    /// it is canonicalized is SHA-256 of it: both canonicalizations, a b=
    /// to blank and an empty one, a signature field past the stack copy,
    /// and a name longer than the lowercasing block.
    #[test]
    fn header_hash_is_sha256_of_the_input() {
        use sha2::{Digest as _, Sha256};
        let long_name = "X-".to_string() + &"Ab".repeat(50);
        let big_b = "QUJD".repeat(700);
        for (sig, names) in [
            (
                "v=1; a=rsa-sha256; h=from:to; b=AbC\r\n dEf; bh=x",
                vec!["From", "to", "FROM"],
            ),
            ("v=1; h=from; bh=x; b=", vec!["from"]),
            ("v=1;  b = \tXY ;  h=subject", vec!["subject", "x"]),
            (&*format!("v=1; b={big_b}; h=from"), vec!["from"]),
            ("v=1; b=Zz", vec![long_name.as_str(), "from"]),
        ] {
            let head = format!(
                "From:  A \t<a@example.com>\r\nTo: b\r\n\t@example.net \r\n\
                 Subject: Hi   there\r\n{long_name}:  v\r\nDKIM-Signature: {sig}\r\n"
            );
            let fields = split_header_fields(head.as_bytes());
            let field = fields.iter().find(|f| f.is("dkim-signature")).unwrap();
            let tags = crate::tag::parse_tag_list(field.value()).unwrap();
            let b_span = tags
                .iter()
                .find(|t| t.name == "b")
                .map(|t| t.full_span.clone())
                .unwrap();
            for canon in [Simple, Relaxed] {
                let mut earlier = Vec::new();
                for f in select_signed_headers(&fields, &names) {
                    canonicalize_header(canon, f, &mut earlier);
                }
                let start = field.raw.len() - field.value().len();
                let mut raw = field.raw.to_vec();
                raw.drain(start + b_span.start..start + b_span.end);
                let blanked = HeaderField {
                    name: field.name,
                    raw: &raw,
                };
                canonicalize_header(canon, &blanked, &mut earlier);
                earlier.truncate(earlier.len() - 2);
                let input = header_hash_input(canon, &fields, &names, field, b_span.clone());
                assert_eq!(input, earlier, "{canon:?} {sig}");
                let hash = header_hash(canon, &fields, &names, field, b_span.clone());
                assert_eq!(hash[..], Sha256::digest(&input)[..], "{canon:?} {sig}");
            }
        }
    }

    #[test]
    fn crlf_normalizer() {
        let mut n = CrlfNormalizer::new();
        let mut out = Vec::new();
        n.update(b"a\nb\r", &mut out);
        n.update(b"\nc\n", &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\n");
    }

    #[test]
    fn mbox_line_skipped() {
        let fields = split_header_fields(b"From x@y Mon 1 2:3\r\nA: b\r\n");
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].name, b"A");
    }
}
