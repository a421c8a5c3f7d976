//! Property tests: every record and macro string the grammar allows prints
//! and parses back to the same value, and no input makes the parsers panic.

use proptest::prelude::*;
use ptt_spf::{
    Directive, DualCidr, MacroContext, MacroExpand, MacroLetter, MacroPart, MacroString, Mechanism,
    Modifier, Qualifier, SpfRecord, Term,
};

fn letter(explanation: bool) -> impl Strategy<Value = MacroLetter> {
    let mut letters = vec![
        MacroLetter::Sender,
        MacroLetter::LocalPart,
        MacroLetter::SenderDomain,
        MacroLetter::Domain,
        MacroLetter::Ip,
        MacroLetter::ValidatedName,
        MacroLetter::IpVersion,
        MacroLetter::Helo,
    ];
    if explanation {
        letters.extend([
            MacroLetter::ClientIp,
            MacroLetter::Receiver,
            MacroLetter::Timestamp,
        ]);
    }
    proptest::sample::select(letters)
}

fn part(explanation: bool) -> impl Strategy<Value = MacroPart> {
    let literal = if explanation {
        "[!-~ ]{1,8}"
    } else {
        "[!-~]{1,8}"
    };
    prop_oneof![
        literal.prop_map(MacroPart::Literal),
        Just(MacroPart::Space),
        Just(MacroPart::UrlSpace),
        (
            letter(explanation),
            any::<bool>(),
            proptest::option::of(1u32..200),
            any::<bool>(),
            "[-.+,/_=]{0,3}"
        )
            .prop_map(|(letter, url_escape, digits, reverse, delimiters)| {
                MacroPart::Expand(MacroExpand {
                    letter,
                    url_escape,
                    digits,
                    reverse,
                    delimiters,
                })
            }),
    ]
}

fn macro_string(explanation: bool) -> impl Strategy<Value = MacroString> {
    proptest::collection::vec(part(explanation), 0..6).prop_map(MacroString::from_parts)
}

/// A domain-spec: macro parts, then a macro or `.toplabel`.
fn domain_spec() -> impl Strategy<Value = MacroString> {
    (
        proptest::collection::vec(part(false), 0..4),
        prop_oneof![
            "\\.[a-z][a-z0-9]{0,6}".prop_map(MacroPart::Literal),
            "\\.[0-9]{1,3}-[a-z0-9]{1,3}".prop_map(MacroPart::Literal),
            part(false).prop_filter("a macro", |p| matches!(p, MacroPart::Expand(_))),
        ],
    )
        .prop_map(|(mut parts, end)| {
            parts.push(end);
            MacroString::from_parts(parts)
        })
        .prop_filter("parses back as a domain-spec", |m| {
            SpfRecord::parse(&format!("v=spf1 include:{m}")).is_ok()
        })
}

fn cidr() -> impl Strategy<Value = DualCidr> {
    (
        proptest::option::of(0u8..=32),
        proptest::option::of(0u8..=128),
    )
        .prop_map(|(v4, v6)| DualCidr { v4, v6 })
}

fn mechanism() -> impl Strategy<Value = Mechanism> {
    prop_oneof![
        Just(Mechanism::All),
        domain_spec().prop_map(Mechanism::Include),
        (proptest::option::of(domain_spec()), cidr())
            .prop_map(|(domain, cidr)| Mechanism::A { domain, cidr }),
        (proptest::option::of(domain_spec()), cidr())
            .prop_map(|(domain, cidr)| Mechanism::Mx { domain, cidr }),
        proptest::option::of(domain_spec()).prop_map(Mechanism::Ptr),
        (any::<[u8; 4]>(), proptest::option::of(0u8..=32)).prop_map(|(a, prefix)| Mechanism::Ip4 {
            addr: a.into(),
            prefix
        }),
        (any::<[u8; 16]>(), proptest::option::of(0u8..=128)).prop_map(|(a, prefix)| {
            Mechanism::Ip6 {
                addr: a.into(),
                prefix,
            }
        }),
        domain_spec().prop_map(Mechanism::Exists),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    prop_oneof![
        4 => (
            proptest::sample::select(vec![
                Qualifier::Pass,
                Qualifier::Fail,
                Qualifier::SoftFail,
                Qualifier::Neutral
            ]),
            mechanism()
        )
            .prop_map(|(qualifier, mechanism)| Term::Directive(Directive { qualifier, mechanism })),
        1 => ("[a-z][a-z0-9._-]{0,8}", macro_string(false))
            .prop_filter("not a known modifier", |(n, _)| n != "redirect" && n != "exp")
            .prop_map(|(name, value)| Term::Modifier(Modifier::Unknown { name, value })),
    ]
}

fn record() -> impl Strategy<Value = SpfRecord> {
    (
        proptest::collection::vec(term(), 0..8),
        proptest::option::of(domain_spec()),
        proptest::option::of(domain_spec()),
    )
        .prop_map(|(mut terms, redirect, exp)| {
            if let Some(r) = redirect {
                terms.push(Term::Modifier(Modifier::Redirect(r)));
            }
            if let Some(e) = exp {
                terms.insert(0, Term::Modifier(Modifier::Exp(e)));
            }
            SpfRecord::from_terms(terms).expect("at most one redirect and one exp")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn record_round_trips(r in record()) {
        let text = r.to_string();
        let back = SpfRecord::parse(&text);
        prop_assert_eq!(back.as_ref(), Ok(&r), "{}", text);
        prop_assert_eq!(back.map(|b| b.to_string()), Ok(text));
    }

    #[test]
    fn macro_round_trips(m in macro_string(true)) {
        let text = m.to_string();
        prop_assert_eq!(MacroString::parse(&text, MacroContext::Explanation), Ok(m));
    }

    #[test]
    fn record_parser_never_panics(s in "v=spf1( [!-~]{0,12}){0,6}") {
        if let Ok(r) = SpfRecord::parse(&s) {
            // What parses prints to something that parses to the same record.
            prop_assert_eq!(SpfRecord::parse(&r.to_string()), Ok(r));
        }
    }

    #[test]
    fn macro_parser_never_panics(s in "\\PC{0,40}") {
        if let Ok(m) = MacroString::parse(&s, MacroContext::Explanation) {
            prop_assert_eq!(MacroString::parse(&m.to_string(), MacroContext::Explanation), Ok(m));
        }
    }
}
