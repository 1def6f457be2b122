//! Dollars per million emails and per million webhook events, from what a load run counted, at
//! published us-east-1 list prices (no free tier, no savings plans). BENCHMARKS.md lists the sources.

/// us-east-1 list prices, in dollars.
pub mod price {
    /// DynamoDB on-demand, per write request unit (after the November 2024 reduction).
    pub const DYNAMODB_WRITE_UNIT: f64 = 0.625 / 1e6;
    /// DynamoDB on-demand, per read request unit.
    pub const DYNAMODB_READ_UNIT: f64 = 0.125 / 1e6;
    /// SQS standard queue, per request (64 KB chunks; every job here is one chunk).
    pub const SQS_REQUEST: f64 = 0.40 / 1e6;
    /// Secrets Manager, per API call.
    pub const SECRETS_CALL: f64 = 0.05 / 1e4;
    /// Lambda, per invocation.
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// Lambda on arm64 (the template's default), per GB-second (first 7.5 billion a month).
    pub const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
    /// API Gateway HTTP API, per request (first 300 million a month).
    pub const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
}

/// What one unit of work (an email, a webhook event) costs, counted.
#[derive(Debug, Clone, Default)]
pub struct PerUnit {
    pub write_units: f64,
    pub read_units: f64,
    pub sqs_requests: f64,
    pub secrets_calls: f64,
    pub lambda_invocations: f64,
    /// Billed duration in seconds times the function's memory in GB.
    pub lambda_gb_seconds: f64,
    pub http_api_requests: f64,
}

/// Dollars per million units, by line, and the total.
pub fn per_million(u: &PerUnit) -> Vec<(&'static str, f64)> {
    let lines = [
        (
            "DynamoDB writes",
            u.write_units * price::DYNAMODB_WRITE_UNIT,
        ),
        ("DynamoDB reads", u.read_units * price::DYNAMODB_READ_UNIT),
        ("SQS", u.sqs_requests * price::SQS_REQUEST),
        ("Secrets Manager", u.secrets_calls * price::SECRETS_CALL),
        (
            "Lambda requests",
            u.lambda_invocations * price::LAMBDA_REQUEST,
        ),
        (
            "Lambda duration (arm64)",
            u.lambda_gb_seconds * price::LAMBDA_ARM_GB_SECOND,
        ),
        ("API Gateway", u.http_api_requests * price::HTTP_API_REQUEST),
    ];
    let mut out: Vec<(&'static str, f64)> = lines.iter().map(|(k, v)| (*k, v * 1e6)).collect();
    out.push(("total", lines.iter().map(|(_, v)| v).sum::<f64>() * 1e6));
    out
}

pub fn print(title: &str, u: &PerUnit) {
    println!("  cost         {title} (us-east-1 list prices)");
    for (line, dollars) in per_million(u) {
        println!("    {line:<26} ${dollars:>9.4}");
    }
}
