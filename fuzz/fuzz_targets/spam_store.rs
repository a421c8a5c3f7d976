//! ptt-spam's token store file reader: any bytes as a database file never
//! panic, and a file it accepts writes back to bytes it reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_spam::TokenDb;

fuzz_target!(|data: &[u8]| {
    if let Ok(db) = TokenDb::from_bytes(data) {
        let again = TokenDb::from_bytes(&db.to_bytes()).expect("written bytes read back");
        assert_eq!(again.spam_messages(), db.spam_messages());
        assert_eq!(again.ham_messages(), db.ham_messages());
        assert_eq!(again.token_count(), db.token_count());
    }
});
