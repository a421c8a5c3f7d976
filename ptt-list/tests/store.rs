//! Both backends: round trips, and FAT32 images checked by dosfstools and
//! mtools (the real tools, not a mock).

use std::path::Path;
use std::process::Command;

use ptt_list::store::{DirFiles, Files, ImageFiles, Store, StoreError};
use ptt_list::{Address, Changes, Policy, State};

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn fsck(img: &Path) {
    let (ok, text) = run("fsck.fat", &["-n", img.to_str().unwrap()]);
    assert!(ok, "fsck.fat -n failed:\n{text}");
}

fn sample() -> (State, Changes) {
    let mut s = State::default();
    let mut c = s
        .create_list(
            "ptt-dev",
            "mailingl.st",
            &[3; 32],
            &[Address::parse("foo@bar.com").unwrap()],
            Policy::Subscribers,
        )
        .unwrap();
    let (_, c2) = s
        .set_subscribed(
            "ptt-dev",
            None,
            &[Address::parse("a@example.net").unwrap()],
            true,
        )
        .unwrap();
    c.merge(c2);
    s.blobs
        .insert("held-x.eml".into(), b"Subject: x\r\n\r\nbody\r\n".to_vec());
    c.blobs_put.insert("held-x.eml".into());
    (s, c)
}

#[test]
fn image_passes_fsck_and_mtools_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lipap.img");
    let files = ImageFiles::create(&img, 64 << 20).unwrap();
    fsck(&img);
    let i = img.to_str().unwrap();
    let (ok, root) = run("mdir", &["-i", i, "::/"]);
    assert!(ok, "{root}");
    for name in ["bounces", "temp", "lists", "tmp"] {
        assert!(root.contains(name), "{name} missing in\n{root}");
    }
    let mut store = Store::new(files);
    let (state, changes) = sample();
    store.commit(&state, &changes).unwrap();
    fsck(&img);
    let (ok, listing) = run("mdir", &["-i", i, "::/lists"]);
    assert!(ok && listing.contains("ptt-dev"), "{listing}");
    let (ok, json) = run("mtype", &["-i", i, "::/lists/ptt-dev.json"]);
    assert!(
        ok && json.contains("\"a@example.net\"") && json.contains("foo@bar.com"),
        "{json}"
    );
    let (ok, blob) = run("mtype", &["-i", i, "::/tmp/held-x.eml"]);
    assert!(ok && blob.contains("body"), "{blob}");

    // A list written by mcopy is read by ptt.
    let other = dir.path().join("other.json");
    let mut theirs = state.lists["ptt-dev"].clone();
    theirs.name = "other".into();
    theirs
        .subscribers
        .insert(Address::parse("mcopy@example.org").unwrap());
    std::fs::write(&other, serde_json::to_vec(&theirs).unwrap()).unwrap();
    let (ok, t) = run(
        "mcopy",
        &["-i", i, other.to_str().unwrap(), "::/lists/other.json"],
    );
    assert!(ok, "{t}");
    let mut store = Store::new(ImageFiles::open(&img).unwrap());
    let loaded = store.load().unwrap();
    assert_eq!(loaded.lists["ptt-dev"], state.lists["ptt-dev"]);
    assert!(
        loaded.lists["other"]
            .subscribers
            .contains(&Address::parse("mcopy@example.org").unwrap())
    );
    assert_eq!(loaded.blobs, state.blobs);

    // Updates and removals keep the image clean.
    let mut s2 = loaded.clone();
    s2.blobs.clear();
    let mut c = Changes::default();
    c.blobs_removed.insert("held-x.eml".into());
    c.lists.insert("other".into());
    store.commit(&s2, &c).unwrap();
    fsck(&img);
    assert!(store.load().unwrap().blobs.is_empty());
}

#[test]
fn directory_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let mut store = Store::new(DirFiles::create(&root).unwrap());
    let (state, changes) = sample();
    store.commit(&state, &changes).unwrap();
    assert!(root.join("lists/ptt-dev.json").is_file() && root.join("bounces.json").is_file());
    let mut store = Store::new(DirFiles::open(&root).unwrap());
    assert_eq!(store.load().unwrap(), state);
    // a write that never finished is ignored
    std::fs::write(root.join("lists/.ptt-dev.json.new"), b"{ truncated").unwrap();
    assert_eq!(store.load().unwrap(), state);
}

#[test]
fn clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![0x42u8; 1 << 20]).unwrap();
    assert!(matches!(
        ImageFiles::open(&junk),
        Err(StoreError::NotAnImage { .. })
    ));
    let img = dir.path().join("a.img");
    ImageFiles::create(&img, 40 << 20).unwrap();
    assert!(matches!(
        ImageFiles::create(&img, 40 << 20),
        Err(StoreError::Exists(_))
    ));
    assert!(matches!(
        ImageFiles::create(&dir.path().join("tiny.img"), 1 << 20),
        Err(StoreError::Full { .. })
    ));
    // Fill the image: the commit fails as a whole and the image stays clean.
    let mut files = ImageFiles::open(&img).unwrap();
    let free = files.free_bytes().unwrap();
    let mut store = Store::new(files);
    let mut state = State::default();
    let mut c = Changes::default();
    for i in 0..8 {
        let name = format!("big-{i}.eml");
        state
            .blobs
            .insert(name.clone(), vec![b'x'; (free / 6) as usize]);
        c.blobs_put.insert(name);
    }
    let err = store.commit(&state, &c).unwrap_err();
    assert!(matches!(err, StoreError::Full { .. }), "{err}");
    fsck(&img);
    assert!(store.load().unwrap().blobs.is_empty());
    // A corrupt list file is named.
    let mut store = Store::new(DirFiles::create(&dir.path().join("d")).unwrap());
    std::fs::write(dir.path().join("d/lists/x.json"), b"{").unwrap();
    let err = store.load().unwrap_err();
    assert!(err.to_string().contains("lists/x.json"), "{err}");
    let _ = store.files().list("lists").unwrap();
}

/// The defect the repair exists for: a directory made by fatfs 0.3.6 alone
/// fails `fsck.fat -n` (if fatfs is ever fixed, this test says so).
#[test]
fn fatfs_alone_fails_fsck() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("raw.img");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&img)
        .unwrap();
    f.set_len(40 << 20).unwrap();
    fatfs::format_volume(
        &mut f,
        fatfs::FormatVolumeOptions::new().fat_type(fatfs::FatType::Fat32),
    )
    .unwrap();
    {
        let fs = fatfs::FileSystem::new(&mut f, fatfs::FsOptions::new()).unwrap();
        fs.root_dir().create_dir("lists").unwrap();
        fs.unmount().unwrap();
    }
    let (ok, text) = run("fsck.fat", &["-n", img.to_str().unwrap()]);
    assert!(!ok, "fsck.fat now accepts fatfs's directories:\n{text}");
}
