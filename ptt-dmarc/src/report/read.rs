//! Reading aggregate reports (XML with quick-xml; email with mail-parser,
//! gzip and zip with miniz_oxide).

use std::borrow::ToOwned;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

use super::*;

/// Nesting limit for the element tree (reports are 5 deep).
const MAX_DEPTH: usize = 32;

#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    fn text_of(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| c.text.trim().to_string())
    }
    fn required(&self, name: &str, path: &'static str) -> Result<String, ReportError> {
        self.text_of(name)
            .ok_or(ReportError::Missing { element: path })
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn xml_error(at: u64, e: impl core::fmt::Display) -> ReportError {
    ReportError::Xml {
        at,
        message: e.to_string(),
    }
}

fn tree(xml: &[u8]) -> Result<Node, ReportError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut stack: Vec<Node> = alloc::vec![Node::default()];
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| xml_error(reader.error_position(), e))?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let mut node = Node {
                    name,
                    ..Node::default()
                };
                for a in e.attributes() {
                    let a = a.map_err(|e| xml_error(at, e))?;
                    let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
                    let value = a.unescape_value().map_err(|e| xml_error(at, e))?;
                    node.attrs.push((key, value.into_owned()));
                }
                if empty {
                    let parent = stack.last_mut().ok_or_else(|| xml_error(at, "stack"))?;
                    parent.children.push(node);
                } else {
                    if stack.len() > MAX_DEPTH {
                        return Err(xml_error(at, "elements nested too deep"));
                    }
                    stack.push(node);
                }
            }
            Event::End(_) => {
                if stack.len() < 2 {
                    return Err(xml_error(at, "unbalanced end tag"));
                }
                let node = stack.pop().ok_or_else(|| xml_error(at, "stack"))?;
                let parent = stack.last_mut().ok_or_else(|| xml_error(at, "stack"))?;
                parent.children.push(node);
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| xml_error(at, e))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                let text = t.decode().map_err(|e| xml_error(at, e))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                let c = r.resolve_char_ref().map_err(|e| xml_error(at, e))?;
                let name = r.decode().map_err(|e| xml_error(at, e))?;
                let text = match c {
                    Some(c) => c.to_string(),
                    None => resolve_predefined_entity(&name)
                        .ok_or_else(|| xml_error(at, format!("unknown entity &{name};")))?
                        .to_owned(),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if stack.len() != 1 {
        return Err(xml_error(xml.len() as u64, "unclosed element"));
    }
    let mut root = stack.pop().unwrap_or_default();
    let Some(feedback) = root.children.pop() else {
        return Err(ReportError::Missing {
            element: "feedback",
        });
    };
    Ok(feedback)
}

fn invalid(element: &'static str, value: &str) -> ReportError {
    ReportError::InvalidValue {
        element,
        value: value.to_string(),
    }
}

fn number(node: &Node, name: &str, path: &'static str) -> Result<u64, ReportError> {
    let text = node.required(name, path)?;
    text.parse().map_err(|_| invalid(path, &text))
}

fn policy(node: &Node, name: &str, path: &'static str) -> Result<Option<Policy>, ReportError> {
    match node.text_of(name) {
        None => Ok(None),
        Some(t) if t.is_empty() => Ok(None),
        Some(t) => Policy::parse(&t).map(Some).ok_or_else(|| invalid(path, &t)),
    }
}

fn alignment(
    node: &Node,
    name: &str,
    path: &'static str,
) -> Result<Option<Alignment>, ReportError> {
    match node.text_of(name) {
        None => Ok(None),
        Some(t) if t.is_empty() => Ok(None),
        Some(t) => Alignment::parse(&t)
            .map(Some)
            .ok_or_else(|| invalid(path, &t)),
    }
}

fn pass_fail(node: &Node, name: &str, path: &'static str) -> Result<bool, ReportError> {
    let t = node.required(name, path)?;
    match t.to_ascii_lowercase().as_str() {
        "pass" => Ok(true),
        "fail" => Ok(false),
        _ => Err(invalid(path, &t)),
    }
}

fn extensions(node: Option<&Node>) -> Vec<Extension> {
    node.map(|n| {
        n.all("extension")
            .map(|e| Extension {
                name: e.attr("name").unwrap_or("").to_string(),
                definition: e.attr("definition").unwrap_or("").to_string(),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl Feedback {
    /// Parses an aggregate report. See the [module docs](super).
    pub fn parse_xml(xml: &[u8]) -> Result<Feedback, ReportError> {
        let root = tree(xml)?;
        if root.name != "feedback" {
            return Err(ReportError::NotFeedback { found: root.name });
        }
        let md = root.child("report_metadata").ok_or(ReportError::Missing {
            element: "report_metadata",
        })?;
        let range = md.child("date_range").ok_or(ReportError::Missing {
            element: "report_metadata/date_range",
        })?;
        let metadata = ReportMetadata {
            org_name: md.required("org_name", "report_metadata/org_name")?,
            email: md.text_of("email").unwrap_or_default(),
            extra_contact_info: md.text_of("extra_contact_info"),
            report_id: md.required("report_id", "report_metadata/report_id")?,
            begin: number(range, "begin", "date_range/begin")?,
            end: number(range, "end", "date_range/end")?,
            errors: md.all("error").map(|e| e.text.trim().to_string()).collect(),
            generator: md.text_of("generator"),
        };
        let pp = root.child("policy_published").ok_or(ReportError::Missing {
            element: "policy_published",
        })?;
        let pct = match pp.text_of("pct") {
            Some(t) if !t.is_empty() => Some(
                t.parse::<u8>()
                    .ok()
                    .filter(|&n| n <= 100)
                    .ok_or_else(|| invalid("policy_published/pct", &t))?,
            ),
            _ => None,
        };
        let testing = match pp.text_of("testing") {
            None => None,
            Some(t) => Some(match t.to_ascii_lowercase().as_str() {
                "y" => true,
                "n" => false,
                _ => return Err(invalid("policy_published/testing", &t)),
            }),
        };
        let discovery_method = match pp.text_of("discovery_method") {
            None => None,
            Some(t) => Some(match t.to_ascii_lowercase().as_str() {
                "psl" => DiscoveryMethod::Psl,
                "treewalk" => DiscoveryMethod::Treewalk,
                _ => return Err(invalid("policy_published/discovery_method", &t)),
            }),
        };
        let policy = PolicyPublished {
            domain: pp.required("domain", "policy_published/domain")?,
            adkim: alignment(pp, "adkim", "policy_published/adkim")?,
            aspf: alignment(pp, "aspf", "policy_published/aspf")?,
            p: policy(pp, "p", "policy_published/p")?,
            sp: policy(pp, "sp", "policy_published/sp")?,
            np: policy(pp, "np", "policy_published/np")?,
            pct,
            fo: nonempty(pp.text_of("fo")),
            testing,
            discovery_method,
        };
        let mut records = Vec::new();
        for rec in root.all("record") {
            records.push(parse_record(rec)?);
        }
        Ok(Feedback {
            version: nonempty(root.text_of("version")),
            metadata,
            policy,
            records,
            extensions: extensions(root.child("extensions")),
        })
    }
}

fn parse_record(rec: &Node) -> Result<Record, ReportError> {
    let row = rec.child("row").ok_or(ReportError::Missing {
        element: "record/row",
    })?;
    let ip_text = row.required("source_ip", "row/source_ip")?;
    let source_ip: IpAddr = ip_text
        .parse()
        .map_err(|_| invalid("row/source_ip", &ip_text))?;
    let count = number(row, "count", "row/count")?;
    let pe = row.child("policy_evaluated").ok_or(ReportError::Missing {
        element: "row/policy_evaluated",
    })?;
    let disposition_text = pe.required("disposition", "policy_evaluated/disposition")?;
    let disposition = match disposition_text.to_ascii_lowercase().as_str() {
        "none" => Disposition::None,
        "pass" => Disposition::Pass,
        "quarantine" => Disposition::Quarantine,
        "reject" => Disposition::Reject,
        _ => return Err(invalid("policy_evaluated/disposition", &disposition_text)),
    };
    let policy_evaluated = PolicyEvaluated {
        disposition,
        dkim_pass: pass_fail(pe, "dkim", "policy_evaluated/dkim")?,
        spf_pass: pass_fail(pe, "spf", "policy_evaluated/spf")?,
        reasons: pe
            .all("reason")
            .map(|r| OverrideReason {
                kind: OverrideType::parse(&r.text_of("type").unwrap_or_default()),
                comment: r.text_of("comment"),
            })
            .collect(),
    };
    let ids = rec.child("identifiers").ok_or(ReportError::Missing {
        element: "record/identifiers",
    })?;
    let identifiers = Identifiers {
        envelope_to: ids.text_of("envelope_to"),
        envelope_from: ids.text_of("envelope_from"),
        header_from: ids.required("header_from", "identifiers/header_from")?,
    };
    let mut dkim = Vec::new();
    let mut spf = Vec::new();
    if let Some(ar) = rec.child("auth_results") {
        for d in ar.all("dkim") {
            let t = d.text_of("result").unwrap_or_default();
            dkim.push(DkimAuthResult {
                domain: d.text_of("domain").unwrap_or_default(),
                selector: d.text_of("selector"),
                result: DkimResult::parse(&t)
                    .ok_or_else(|| invalid("auth_results/dkim/result", &t))?,
                human_result: d.text_of("human_result"),
            });
        }
        for s in ar.all("spf") {
            let t = s.text_of("result").unwrap_or_default();
            let result = match t.to_ascii_lowercase().as_str() {
                // RFC 7489 schema comments: commonly implemented so.
                "unknown" => SpfResult::TempError,
                "error" => SpfResult::PermError,
                _ => SpfResult::parse(&t).ok_or_else(|| invalid("auth_results/spf/result", &t))?,
            };
            let scope = match s.text_of("scope").as_deref() {
                Some("mfrom") => Some(SpfScope::MailFrom),
                Some("helo") => Some(SpfScope::Helo),
                None | Some("") => None,
                Some(other) => return Err(invalid("auth_results/spf/scope", other)),
            };
            spf.push(SpfAuthResult {
                domain: s.text_of("domain").unwrap_or_default(),
                scope,
                result,
                human_result: s.text_of("human_result"),
            });
        }
    }
    Ok(Record {
        source_ip,
        count,
        policy_evaluated,
        identifiers,
        dkim,
        spf,
        extensions: extensions(rec.child("extensions")),
    })
}

/// Unpacks a gzip member (RFC 1952) with miniz_oxide.
fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b || data[2] != 8 {
        return None;
    }
    let flags = data[3];
    let mut pos = 10usize;
    if flags & 4 != 0 {
        let xlen = usize::from(*data.get(pos)?) | usize::from(*data.get(pos + 1)?) << 8;
        pos = pos.checked_add(2 + xlen)?;
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            let nul = data.get(pos..)?.iter().position(|&b| b == 0)?;
            pos += nul + 1;
        }
    }
    if flags & 2 != 0 {
        pos += 2;
    }
    inflate(data.get(pos..)?)
}

/// Bounded raw-deflate decompression: reports are small, and a bomb must
/// not exhaust memory.
fn inflate(data: &[u8]) -> Option<Vec<u8>> {
    const LIMIT: usize = 64 << 20;
    miniz_oxide::inflate::decompress_to_vec_with_limit(data, LIMIT).ok()
}

/// The first file of a zip archive whose name ends in `.xml` (or the first
/// file at all), stored or deflated.
fn unzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 0usize;
    let mut first = None;
    while data.get(pos..pos + 4)? == b"PK\x03\x04" {
        let h = data.get(pos..pos + 30)?;
        let le16 = |i: usize| usize::from(h[i]) | usize::from(h[i + 1]) << 8;
        let le32 = |i: usize| {
            usize::from(h[i])
                | usize::from(h[i + 1]) << 8
                | usize::from(h[i + 2]) << 16
                | usize::from(h[i + 3]) << 24
        };
        let flags = le16(6);
        let method = le16(8);
        let size = le32(18);
        let name_len = le16(26);
        let extra_len = le16(28);
        let name = data.get(pos + 30..pos + 30 + name_len)?;
        let start = pos + 30 + name_len + extra_len;
        // Sizes after the data (bit 3) are only in the central directory:
        // read the one member we can.
        let body = if flags & 8 != 0 {
            data.get(start..)?
        } else {
            data.get(start..start.checked_add(size)?)?
        };
        let content = match method {
            0 => Some(body.to_vec()),
            8 => inflate(body),
            _ => None,
        };
        if name.ends_with(b".xml") {
            return content;
        }
        if first.is_none() {
            first = content;
        }
        if flags & 8 != 0 {
            break;
        }
        pos = start + size;
    }
    first
}

/// Finds and parses the aggregate report(s) attached to an email (RFC 7489
/// 7.2.1.1: an `.xml`, `.xml.gz`/`.gz` or `.zip` part; the content is
/// sniffed, so a wrong Content-Type does not matter).
pub fn from_message(message: &[u8]) -> Result<Vec<Feedback>, ReportError> {
    let msg = mail_parser::MessageParser::default()
        .parse(message)
        .ok_or_else(|| ReportError::NoReport {
            reason: "not a MIME message".into(),
        })?;
    let mut reports = Vec::new();
    let mut last_error = None;
    for part in msg.parts.iter() {
        if matches!(part.body, mail_parser::PartType::Multipart(_)) {
            continue;
        }
        let data = part.contents();
        let xml: Option<Vec<u8>> = if data.starts_with(b"\x1f\x8b") {
            gunzip(data)
        } else if data.starts_with(b"PK\x03\x04") {
            unzip(data)
        } else {
            let text = data.trim_ascii_start();
            (text.starts_with(b"<?xml") || text.starts_with(b"<feedback")).then(|| text.to_vec())
        };
        let Some(xml) = xml else { continue };
        match Feedback::parse_xml(&xml) {
            Ok(f) => reports.push(f),
            Err(e) => last_error = Some(e),
        }
    }
    if reports.is_empty() {
        return Err(last_error.unwrap_or(ReportError::NoReport {
            reason: "no XML, gzip or zip part".into(),
        }));
    }
    Ok(reports)
}
