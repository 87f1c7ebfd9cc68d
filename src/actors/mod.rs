//! The daemon's actors, one per file. Each file defines the messages its actor
//! handles. Pure logic lives in plain modules outside `actors/`.

pub mod config;
pub mod control;
pub mod db_poll;
pub mod folder_watch;
pub mod log_rotator;
pub mod pairing;
pub mod realtime_feed;
pub mod slot;
pub mod supervisor;
pub mod uploader;
