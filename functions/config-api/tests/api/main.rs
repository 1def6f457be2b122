//! The config API against real local servers: the AWS emulator (moto), the Postmark simulator, a real
//! SMTP server (aiosmtpd), and the OpenAPI tools (openapi-spec-validator, schemathesis).

mod contract;
mod managed;
mod no_leaks;
mod readback;
mod server_test;
mod servers;
mod support;
mod webhook;
