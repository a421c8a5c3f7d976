use std::path::Path;

use super::*;

fn problems(text: &str) -> Vec<Problem> {
    match Config::parse(text, Path::new("/etc/ptt/ptt.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(Problems(p)) => p,
    }
}

const MINIMAL: &str = "domain = \"example.org\"\nhostname = \"mx.example.org\"\nstate = \"st\"\n";

#[test]
fn the_shipped_example_is_valid_and_configures_every_running_service() {
    let config = Config::parse(EXAMPLE, Path::new("/etc/ptt/ptt.toml")).unwrap();
    assert_eq!(config.domain, "example.org");
    assert_eq!(
        config.services(),
        [
            ServiceName::Submission,
            ServiceName::Receiver,
            ServiceName::Signer,
            ServiceName::Relay
        ]
    );
    // 0.0.0.0:25 is dialled as loopback.
    assert_eq!(
        config.receiver.unwrap().address,
        "127.0.0.1:25".parse().unwrap()
    );
    assert_eq!(config.relay.unwrap().port, 25);
}

#[test]
fn relative_paths_are_relative_to_the_file() {
    let config = Config::parse(MINIMAL, Path::new("/etc/ptt/ptt.toml")).unwrap();
    assert_eq!(config.state, Path::new("/etc/ptt/st"));
    assert_eq!(
        config.state_of(ServiceName::Relay),
        Path::new("/etc/ptt/st/relay")
    );
}

#[test]
fn an_unknown_key_is_placed_and_the_known_ones_named() {
    let p = problems(&format!(
        "{MINIMAL}[submission]\nlisten = [\"127.0.0.1:587\"]\nlistn_tls = 3\n"
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].line, p[0].column), (6, 1));
    assert!(p[0].what.contains("listn_tls"), "{}", p[0]);
    assert!(p[0].fix.contains("listen_tls"), "{}", p[0]);
    assert!(
        p[0].to_string().starts_with("/etc/ptt/ptt.toml:6:1: "),
        "{}",
        p[0]
    );
}

#[test]
fn every_semantic_problem_is_reported_at_its_value() {
    let text = format!(
        "{MINIMAL}[users]\nrepo = \"u\"\n[submission]\nlisten = [\"127.0.0.1\"]\nallow = [\"10.0.0.0/99\"]\n[signer]\nlisten = []\n[relay]\nlisten = [\"127.0.0.1:1\"]\n"
    );
    let p = problems(&text);
    let at: Vec<(usize, usize)> = p.iter().map(|p| (p.line, p.column)).collect();
    assert!(at.contains(&(7, 11)), "{p:#?}");
    assert!(at.contains(&(8, 10)), "{p:#?}");
    assert!(at.contains(&(10, 10)), "{p:#?}");
    assert!(p.iter().all(|p| !p.fix.is_empty()));
}

#[test]
fn a_syntax_error_is_placed() {
    let p = problems("domain = \"example.org\"\nhostname = mx.example.org\n");
    assert_eq!(p[0].line, 2, "{p:?}");
    assert!(
        p[0].fix.contains("TOML") || p[0].fix.contains("quotes"),
        "{}",
        p[0]
    );
}

#[test]
fn missing_keys_say_what_to_add() {
    let p = problems("hostname = \"mx.example.org\"\nstate = \"s\"\n");
    assert!(p[0].what.contains("domain"), "{}", p[0]);
    assert!(p[0].fix.contains("domain = \"example.org\""), "{}", p[0]);
}

#[test]
fn services_need_their_next_hop_and_the_users() {
    let p = problems(&format!(
        "{MINIMAL}[submission]\nlisten = [\"127.0.0.1:587\"]\n"
    ));
    let text: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|t| t.contains("no [signer]")), "{text:#?}");
    assert!(text.iter().any(|t| t.contains("no [users]")), "{text:#?}");
}

#[test]
fn networks_match_their_addresses() {
    let n = Network::parse("10.1.0.0/16").unwrap();
    assert!(n.contains("10.1.200.3".parse().unwrap()));
    assert!(!n.contains("10.2.0.1".parse().unwrap()));
    assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
    let n6 = Network::parse("fd00::/8").unwrap();
    assert!(n6.contains("fd12::1".parse().unwrap()));
    assert!(!n6.contains("fe80::1".parse().unwrap()));
    assert!(
        Network::parse("0.0.0.0/0")
            .unwrap()
            .contains("192.0.2.1".parse().unwrap())
    );
    assert!(Network::parse("1.2.3.4/33").is_none());
}
