//! Database imports over ODBC: connection strings (`connection_string`,
//! pure), reading a query's result into CSV in bounded memory (`odbc`,
//! blocking: run it on threads of its own), planning the time windows of
//! each import (`planner`, pure, injected clock) on the database's clock
//! (`clock`, pure: how to ask each engine and read its answer) and
//! remembering how far each import got (`watermark`).

pub mod clock;
pub mod connection_string;
pub mod odbc;
pub mod planner;
pub mod watermark;
