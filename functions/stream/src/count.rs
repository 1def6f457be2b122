//! The counting step: the batch's recorded events move the campaign counters, exactly once (see
//! [`store::tally`]).

use store::StoreError;
use store::stream::StreamRecord;
use store::tally::TallyReport;
use tracing::info;

use crate::App;

/// Counts the batch's recorded events.
pub async fn count(app: &App, records: &[StreamRecord]) -> Result<TallyReport, StoreError> {
    let report = app.table.count_stream(records).await?;
    if report.events > 0 {
        info!(
            events = report.events,
            already_counted = report.already_counted,
            units = report.units,
            retried = report.retried,
            "events counted"
        );
    }
    Ok(report)
}
