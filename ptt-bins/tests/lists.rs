//! The list server end to end: swaks users and an aiosmtpd "Internet"
//! (the relay's smarthost), BIND serving the keys the signer publishes,
//! dkimpy judging the copies, Python's urllib making the one-click POST,
//! `fsck.fat` checking the image, and the `ptt` verbs working on the same
//! state while the server runs.

#[path = "common/farm.rs"]
mod farm;
#[path = "common/site.rs"]
mod site;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use farm::MxFarm;
use ptt_testkit::python::{PyDns, dkimpy_arc_verify, dkimpy_verify_each};
use ptt_testkit::{free_port, swaks};
use site::{Site, dns_through, ptt, text};

const FARM_IP: &str = "127.0.0.33";

/// The message of a farm record, CRLF line ends.
fn data_of(record: &serde_json::Value) -> String {
    record["data"]
        .as_str()
        .unwrap()
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
}

/// Mail from outside to the receiver; the server's last reply line.
fn from_outside(site: &Site, from: &str, to: &str, subject: &str, body: &str) -> String {
    let port = site.receiver.to_string();
    let header = format!("Subject: {subject}");
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--ehlo",
        "mx.outside.test",
        "--from",
        from,
        "--to",
        to,
        "--header",
        &header,
        "--body",
        body,
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The farm's records for `rcpt`, whose data contains `needle`.
fn copies_for(farm: &MxFarm, rcpt: &str, needle: &str) -> Vec<serde_json::Value> {
    farm.mail(FARM_IP)
        .into_iter()
        .filter(|r| {
            r["rcpt_tos"]
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t.as_str() == Some(rcpt)))
                && r["data"].as_str().is_some_and(|d| d.contains(needle))
        })
        .collect()
}

/// Waits up to `secs` for `check` to give something.
fn wait_for<T>(secs: u64, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = check() {
            return Some(t);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The first `NAME-KIND-TOKEN@example.test` address in `text`.
fn token_address(text: &str, kind: &str) -> Option<String> {
    let marker = format!("dev-{kind}-");
    let at = text.find(&marker)?;
    let rest = &text[at..];
    let end = rest.find("@example.test")?;
    Some(format!("{}@example.test", &rest[..end]))
}

fn show(image: &Path) -> String {
    let out = ptt(&["show", image.to_str().unwrap(), "dev"], "");
    assert!(out.status.success(), "ptt show: {}", text(&out));
    text(&out)
}

/// The subscribers `ptt show` lists.
fn subscribers(image: &Path) -> Vec<String> {
    let shown = show(image);
    let mut inside = false;
    let mut out = Vec::new();
    for line in shown.lines() {
        if line.starts_with("subscribers (") {
            inside = true;
            continue;
        }
        if inside && !line.starts_with("  ") {
            break;
        }
        if inside {
            out.push(
                line.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    out
}

/// One-click POST with Python's urllib, trusting the site's CA and
/// reaching our host name on loopback. Returns `STATUS BODY`.
fn one_click_post(url: &str, ca: &Path, body: &str) -> String {
    let script = r#"import socket, ssl, sys, urllib.request, urllib.error
url, ca, body = sys.argv[1], sys.argv[2], sys.argv[3]
real = socket.getaddrinfo
def local(host, *a, **k):
    return real('127.0.0.1' if host == 'mx.example.test' else host, *a, **k)
socket.getaddrinfo = local
ctx = ssl.create_default_context(cafile=ca)
req = urllib.request.Request(url, data=body.encode(), method='POST',
    headers={'Content-Type': 'application/x-www-form-urlencoded'})
try:
    with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
        print(r.status, r.read().decode().strip())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode().strip())
"#;
    let out = Command::new("python3")
        .args(["-c", script, url, ca.to_str().unwrap(), body])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "urllib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_list_conversation_from_subscription_to_one_click_unsubscription() {
    let bind = ptt_testkit::Bind::start(
        "example.test",
        &[
            ("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\""),
            // An author domain that needs the DMARC mitigation.
            ("strict", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\""),
            ("_dmarc.strict", "TXT", "\"v=DMARC1; p=reject\""),
        ],
    );
    let farm_port = free_port();
    let farm = MxFarm::start(farm_port, &[(FARM_IP, "by_address", None)]);
    let mut site = Site::with("", Some(&dns_through(&bind)), "record_ttl = 1");
    site.add_to_section(
        "relay",
        &format!("smarthost = \"{FARM_IP}:{farm_port}\"\nretry_seconds = [1]"),
    );
    // The list state: a FAT32 image, the list made before the server runs.
    let image = site.dir.path().join("lists.img");
    let img = image.to_str().unwrap().to_string();
    let out = ptt(&["create", &img], "");
    assert!(out.status.success(), "{}", text(&out));
    let out = ptt(
        &[
            "add",
            &img,
            "--domain",
            "example.test",
            "dev",
            "--moderator",
            "alice@example.test",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    site.append_config(&format!(
        "[lists]\nlisten = [\"127.0.0.1:{}\"]\nstate = \"lists.img\"\nhttps_listen = [\"127.0.0.1:{}\"]\n",
        site.lists, site.lists_https
    ));
    site.serve(&[]);
    // The signer signs once the primary serves its keys.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !site.log().contains("ready") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }

    // An unknown address of the list domain is refused at RCPT.
    let said = from_outside(&site, "x@outside.test", "nolist@example.test", "?", "?");
    assert!(said.contains("550 5.1.1"), "{said}");

    // Subscription by mail, confirmed by mail. The first try may meet
    // the signer before its keys are published: the sender tries again.
    let confirmation = wait_for(40, || {
        let said = from_outside(
            &site,
            "carol@sub.test",
            "dev-subscribe@example.test",
            "subscribe",
            "please",
        );
        if !said.contains("250 2.0.0") {
            std::thread::sleep(Duration::from_millis(500));
            return None;
        }
        wait_for(20, || {
            copies_for(&farm, "carol@sub.test", "dev-confirm-")
                .first()
                .map(data_of)
        })
    })
    .unwrap_or_else(|| panic!("no confirmation reached carol:\n{}", site.log()));
    let confirm = token_address(&confirmation, "confirm").unwrap();
    let said = from_outside(&site, "carol@sub.test", &confirm, "Re: confirm", "yes");
    assert!(said.contains("250 2.0.0"), "{said}");
    assert!(
        wait_for(20, || subscribers(&image)
            .contains(&"carol@sub.test".to_string())
            .then_some(()))
        .is_some(),
        "{}",
        show(&image)
    );

    // `ptt subscribe` on the same image while the server runs: 97 more,
    // one that refuses mail for good and one greylisted once.
    let mut more: Vec<String> = (0..97).map(|i| format!("s{i:03}@sub.test")).collect();
    more.push("gone@sub.test".into());
    more.push("slow@sub.test".into());
    let mut args = vec!["subscribe", img.as_str(), "--domain", "example.test", "dev"];
    args.extend(more.iter().map(String::as_str));
    let out = ptt(&args, "");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(subscribers(&image).len(), 100);

    // A post from a subscriber reaches all 100 (less the one that
    // refuses), signed twice and ARC-sealed.
    let said = from_outside(
        &site,
        "carol@sub.test",
        "dev@example.test",
        "first post",
        "hello list",
    );
    assert!(said.contains("250 2.0.0"), "{said}");
    let got = wait_for(60, || {
        let n = farm
            .mail(FARM_IP)
            .iter()
            .filter(|r| r["data"].as_str().is_some_and(|d| d.contains("first post")))
            .count();
        (n >= 99).then_some(n)
    });
    assert_eq!(got, Some(99), "{}", site.log());
    let copy = copies_for(&farm, "s000@sub.test", "first post");
    assert_eq!(copy.len(), 1);
    let data = data_of(&copy[0]);
    assert!(data.contains("List-Id: <dev.example.test>"), "{data}");
    assert!(
        copy[0]["mail_from"]
            .as_str()
            .unwrap()
            .starts_with("dev-return-1-s000=sub.test@example.test"),
        "{}",
        copy[0]["mail_from"]
    );
    let py = PyDns::Server(bind.port());
    let signatures = dkimpy_verify_each(data.as_bytes(), &py);
    assert_eq!(signatures, vec![true, true], "{data}");
    assert_eq!(dkimpy_arc_verify(data.as_bytes(), &py), "pass", "{data}");
    // The greylisted subscriber got it on a later try.
    assert_eq!(copies_for(&farm, "slow@sub.test", "first post").len(), 1);

    // Carol's domain publishes no DMARC policy: her From stays.
    let header_of = |data: &str, name: &str| {
        data.split("\r\n\r\n")
            .next()
            .unwrap()
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .map(str::to_string)
            .unwrap_or_default()
    };
    assert!(
        header_of(&data, "from").contains("carol@sub.test"),
        "{data}"
    );
    // An author whose domain says p=reject (and passes DMARC): the
    // copies come From the list, with Reply-To the author.
    let out = ptt(
        &[
            "subscribe",
            &img,
            "--domain",
            "example.test",
            "dev",
            "erin@strict.example.test",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = from_outside(
        &site,
        "erin@strict.example.test",
        "dev@example.test",
        "strict author",
        "hi",
    );
    assert!(said.contains("250 2.0.0"), "{said}");
    let strict = wait_for(30, || {
        copies_for(&farm, "s004@sub.test", "strict author")
            .first()
            .map(data_of)
    })
    .unwrap_or_else(|| panic!("the post of erin did not go out:\n{}", site.log()));
    let from = header_of(&strict, "from");
    assert!(from.trim_end().ends_with("<dev@example.test>"), "{strict}");
    assert!(
        header_of(&strict, "reply-to").contains("erin@strict.example.test"),
        "{strict}"
    );
    assert_eq!(dkimpy_verify_each(strict.as_bytes(), &py), vec![true, true]);

    // The refusal comes back to the VERP address as a report: a bounce
    // counted.
    let counted = wait_for(40, || {
        show(&image)
            .lines()
            .find(|l| l.contains("gone@sub.test") && l.contains("bounce score"))
            .map(str::to_string)
    });
    assert!(counted.is_some(), "{}\n{}", show(&image), site.log());

    // More posts until the fifth hard bounce removes gone@. Meanwhile
    // `ptt subscribe` and `ptt add` change the same image.
    let verbs = {
        let img = img.clone();
        std::thread::spawn(move || {
            for i in 0..10 {
                let a = format!("late{i}@sub.test");
                let out = ptt(
                    &["subscribe", &img, "--domain", "example.test", "dev", &a],
                    "",
                );
                assert!(out.status.success(), "{}", text(&out));
            }
            let out = ptt(
                &[
                    "add",
                    &img,
                    "--domain",
                    "example.test",
                    "other",
                    "--moderator",
                    "alice@example.test",
                ],
                "",
            );
            assert!(out.status.success(), "{}", text(&out));
        })
    };
    // Posts 3 to 5 (erin's was the second): the fifth hard bounce.
    for n in 3..=5 {
        let counted = site.log().matches("bounce counted").count();
        let subject = format!("post number {n}");
        let said = from_outside(
            &site,
            "carol@sub.test",
            "dev@example.test",
            &subject,
            "more",
        );
        assert!(said.contains("250 2.0.0"), "{said}");
        // Each bounce is counted before the next post.
        let next = wait_for(40, || {
            (site.log().matches("bounce counted").count() > counted).then_some(())
        });
        assert!(
            next.is_some(),
            "post {n}: no bounce counted\n{}",
            site.log()
        );
    }
    verbs.join().unwrap();
    let removed = wait_for(40, || {
        (!subscribers(&image).contains(&"gone@sub.test".to_string())).then_some(())
    });
    assert!(removed.is_some(), "{}\n{}", show(&image), site.log());
    let now = subscribers(&image);
    for i in 0..10 {
        assert!(now.contains(&format!("late{i}@sub.test")), "{now:?}");
    }
    let shown = show(&image);
    assert!(shown.contains("posts 5"), "{shown}");
    let all = text(&ptt(&["show", &img], ""));
    assert!(all.contains("other@example.test"), "{all}");

    // A post from someone not subscribed is held; the moderator (alice,
    // a user here) is told and approves it by mail.
    let said = from_outside(
        &site,
        "dave@outside.test",
        "dev@example.test",
        "from a stranger",
        "hi",
    );
    assert!(said.contains("250 2.0.0"), "{said}");
    let notice = wait_for(30, || {
        site.mailbox("alice@example.test")
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .find(|m| m.contains("dev-accept-"))
    })
    .unwrap_or_else(|| panic!("no held-post notice for alice:\n{}", site.log()));
    let accept = token_address(&notice, "accept").unwrap();
    let said = site.submit_as_alice(&accept, "approve", "approved");
    assert!(said.contains("250 2.0.0"), "{said}");
    assert!(
        wait_for(60, || (!copies_for(
            &farm,
            "s001@sub.test",
            "from a stranger"
        )
        .is_empty())
        .then_some(()))
        .is_some(),
        "the approved post did not go out:\n{}",
        site.log()
    );

    // One-click unsubscription by HTTPS POST, with the URL of a copy.
    let data = data_of(&copies_for(&farm, "s002@sub.test", "first post")[0]);
    assert!(
        data.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{data}"
    );
    let start = data.find("<https://").unwrap() + 1;
    let url = &data[start..start + data[start..].find('>').unwrap()];
    assert!(
        url.starts_with(&format!("https://mx.example.test:{}/", site.lists_https)),
        "{url}"
    );
    let ca = site.state().join("ca/ca.pem");
    // A wrong token unsubscribes nobody.
    let forged = url.replace("token=", "token=x");
    assert!(
        one_click_post(&forged, &ca, "List-Unsubscribe=One-Click").starts_with("403"),
        "{forged}"
    );
    let said = one_click_post(url, &ca, "List-Unsubscribe=One-Click");
    assert!(said.starts_with("200"), "{said}");
    let now = subscribers(&image);
    assert!(!now.contains(&"s002@sub.test".to_string()), "{now:?}");
    assert!(now.contains(&"s003@sub.test".to_string()), "{now:?}");

    site.terminate();
    let fsck = Command::new("fsck.fat").arg("-n").arg(&image).output();
    match fsck {
        Ok(out) => assert!(
            out.status.success(),
            "fsck.fat -n: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("fsck.fat (dosfstools) is needed: {e}"),
    }
}

#[test]
fn copies_the_signer_cannot_take_wait_in_the_lists_retry_queue() {
    // One process for the receiver and the list server, none for the
    // signer: every copy of a post is deferred, and kept.
    let mut site = Site::new("");
    let dir = site.dir.path().join("lists");
    std::fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap().to_string();
    let out = ptt(&["create", &d], "");
    assert!(out.status.success(), "{}", text(&out));
    let out = ptt(
        &[
            "add",
            &d,
            "--domain",
            "example.test",
            "dev",
            "--moderator",
            "alice@example.test",
            "--subscriber",
            "a@sub.test",
            "--subscriber",
            "b@sub.test",
            "--policy",
            "open",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    site.append_config(&format!(
        "[lists]\nlisten = [\"127.0.0.1:{}\"]\nstate = \"lists\"\n",
        site.lists
    ));
    site.serve(&["receiver", "lists"]);
    let said = from_outside(
        &site,
        "x@outside.test",
        "dev@example.test",
        "while the signer is down",
        "hi",
    );
    assert!(said.contains("250 2.0.0"), "{said}\n{}", site.log());
    let shown = show(&dir);
    assert!(shown.contains("posts 1"), "{shown}");
    assert!(shown.contains("retry queue (2)"), "{shown}\n{}", site.log());
    assert!(
        shown.contains("post 1 to a@sub.test: 1 attempt(s)"),
        "{shown}"
    );
    // The post's bytes wait beside the queue for the retries.
    let kept = std::fs::read_dir(dir.join("tmp")).unwrap().count();
    assert_eq!(kept, 1, "{shown}");
}
