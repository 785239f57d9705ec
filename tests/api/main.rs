//! The service's contract, in one test binary that needs nothing but Rust: the real router, the
//! real AWS SDK clients with their HTTP layer mocked (`aws-smithy-mocks`), the `events/`
//! fixtures decoded by lambda_http, and the Liquid of the README and docs/ rendered against real answers.
//! The tests that need Java and Python (DynamoDB Local, the SAM CLI) are in `tests/e2e`.

mod architecture;
mod choices;
mod endpoints;
mod events;
mod handler;
mod properties;
mod readme_liquid;
mod support;
