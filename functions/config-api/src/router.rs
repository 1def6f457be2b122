//! Method and path to route. A path that no route has is 404; a known path with another method is 405
//! with the methods it does accept.

use http::Method;
use percent_encoding::percent_decode_str;

use crate::http::ApiError;

/// The health check: the one path that needs no admin key.
pub const HEALTH_PATH: &str = "/api/health";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    ListServers,
    CreateServer,
    GetServer(String),
    UpdateServer(String),
    DeleteServer(String),
    TestServer(String),
    GetWebhook,
    RefreshWebhookPassword,
    SyncWebhooks,
    ListRecoveries,
    ListSuppressions,
    AddSuppression,
    RemoveSuppression(String),
    GetSubscriber(String),
    SubscriberActivity(String),
    BroadcastStats(String),
    SequenceStats(String),
    ListJobs,
    GetJob(String),
}

impl Route {
    /// A name for logs: the route without its parameters (which can be addresses).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::ListServers => "list_servers",
            Self::CreateServer => "create_server",
            Self::GetServer(_) => "get_server",
            Self::UpdateServer(_) => "update_server",
            Self::DeleteServer(_) => "delete_server",
            Self::TestServer(_) => "test_server",
            Self::GetWebhook => "get_webhook",
            Self::RefreshWebhookPassword => "refresh_webhook_password",
            Self::SyncWebhooks => "sync_webhooks",
            Self::ListRecoveries => "list_recoveries",
            Self::ListSuppressions => "list_suppressions",
            Self::AddSuppression => "add_suppression",
            Self::RemoveSuppression(_) => "remove_suppression",
            Self::GetSubscriber(_) => "get_subscriber",
            Self::SubscriberActivity(_) => "subscriber_activity",
            Self::BroadcastStats(_) => "broadcast_stats",
            Self::SequenceStats(_) => "sequence_stats",
            Self::ListJobs => "list_jobs",
            Self::GetJob(_) => "get_job",
        }
    }
}

/// Resolves a request's method and path (percent-encoded, without the query).
pub fn resolve(method: &Method, path: &str) -> Result<Route, ApiError> {
    let not_found = || ApiError::not_found(format!("no route for {path}"));
    let Some(rest) = path.strip_prefix('/') else {
        return Err(not_found());
    };
    let mut segments = Vec::new();
    for raw in rest.split('/') {
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| not_found())?;
        if decoded.is_empty() {
            return Err(not_found());
        }
        segments.push(decoded.into_owned());
    }
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let p = |s: &str| s.to_owned();
    let options: Vec<(Method, Route)> = match segs.as_slice() {
        ["api", "health"] => vec![(Method::GET, Route::Health)],
        ["api", "email-servers"] => vec![
            (Method::GET, Route::ListServers),
            (Method::POST, Route::CreateServer),
        ],
        ["api", "email-servers", id] => vec![
            (Method::GET, Route::GetServer(p(id))),
            (Method::PATCH, Route::UpdateServer(p(id))),
            (Method::DELETE, Route::DeleteServer(p(id))),
        ],
        ["api", "email-servers", id, "test"] => {
            vec![(Method::POST, Route::TestServer(p(id)))]
        }
        ["api", "postmark", "webhook"] => vec![(Method::GET, Route::GetWebhook)],
        ["api", "postmark", "webhook", "refresh-password" | "refresh"] => {
            vec![(Method::POST, Route::RefreshWebhookPassword)]
        }
        ["api", "postmark", "webhook", "sync"] => vec![(Method::POST, Route::SyncWebhooks)],
        ["api", "postmark", "recoveries"] => vec![(Method::GET, Route::ListRecoveries)],
        ["api", "suppressions"] => vec![
            (Method::GET, Route::ListSuppressions),
            (Method::POST, Route::AddSuppression),
        ],
        ["api", "suppressions", email] => {
            vec![(Method::DELETE, Route::RemoveSuppression(p(email)))]
        }
        ["api", "subscribers", email] => vec![(Method::GET, Route::GetSubscriber(p(email)))],
        ["api", "subscribers", email, "activity"] => {
            vec![(Method::GET, Route::SubscriberActivity(p(email)))]
        }
        ["api", "broadcasts", id, "stats"] => vec![(Method::GET, Route::BroadcastStats(p(id)))],
        ["api", "sequences", id, "stats"] => vec![(Method::GET, Route::SequenceStats(p(id)))],
        ["api", "jobs"] => vec![(Method::GET, Route::ListJobs)],
        ["api", "jobs", id] => vec![(Method::GET, Route::GetJob(p(id)))],
        _ => return Err(not_found()),
    };
    let allowed: Vec<Method> = options.iter().map(|(m, _)| m.clone()).collect();
    options
        .into_iter()
        .find(|(m, _)| m == method)
        .map(|(_, route)| route)
        .ok_or_else(|| ApiError::method_not_allowed(&allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_with_decoded_parameters() {
        assert_eq!(resolve(&Method::GET, "/api/health").unwrap(), Route::Health);
        assert_eq!(
            resolve(&Method::PATCH, "/api/email-servers/abc").unwrap(),
            Route::UpdateServer("abc".into())
        );
        assert_eq!(
            resolve(&Method::DELETE, "/api/suppressions/Jane%2Bx%40Example.com").unwrap(),
            Route::RemoveSuppression("Jane+x@Example.com".into())
        );
        assert_eq!(
            resolve(&Method::GET, "/api/subscribers/a@b.co/activity").unwrap(),
            Route::SubscriberActivity("a@b.co".into())
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        for path in [
            "/",
            "/api",
            "/api/nope",
            "/api/email-servers/",
            "/api//email-servers",
            "/api/email-servers/a/b/c",
            "/api/email-servers/%FF",
            "api/health",
        ] {
            let e = resolve(&Method::GET, path).unwrap_err();
            assert_eq!(e.status, 404, "{path}");
        }
        let e = resolve(&Method::PUT, "/api/email-servers/abc").unwrap_err();
        assert_eq!(e.status, 405);
        let r = e.into_response();
        assert_eq!(r.headers()["allow"], "GET, PATCH, DELETE");
        let e = resolve(&Method::GET, "/api/email-servers/abc/test").unwrap_err();
        assert_eq!(e.status, 405);
    }
}
