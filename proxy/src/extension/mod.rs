//! Extensions.

pub mod health_check;
