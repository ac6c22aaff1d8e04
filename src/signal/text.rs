//! What people type: display names and chat messages, and the characters they may not carry.
//!
//! Both are shown to everybody in a room. A character that hides itself, reorders the text
//! around it or drives a terminal would let one person pass for another, or a message read
//! differently from what it says, so the server refuses such text with an error that names
//! the character. It never rewrites what was typed, apart from trimming the white space around
//! a name: what the others see is what the sender sent.

mod chars;
mod chat;
mod name;
#[cfg(test)]
mod properties;

pub use chars::{Kind, Offending};
pub use chat::{ChatError, MAX_CHAT_CHARS, check_chat_text};
pub use name::{MAX_NAME_CHARS, NameError, normalize_display_name};
