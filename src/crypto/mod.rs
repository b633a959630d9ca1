//! Key material and cryptography, on `ring`. Key bytes live in types that zeroize on drop and
//! never print.

mod master_key;

pub use master_key::{MasterKey, MasterKeyError, MASTER_KEY_LEN};
