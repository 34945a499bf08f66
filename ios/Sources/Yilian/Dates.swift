import Foundation
import YilianFFI

// The bindings carry days as ISO `YYYY-MM-DD` strings and instants as epoch milliseconds (one
// encoding for Kotlin and Swift alike); these give them Foundation types.

private let dayFormat: DateFormatter = {
    let f = DateFormatter()
    f.calendar = Calendar(identifier: .gregorian)
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone.current
    f.dateFormat = "yyyy-MM-dd"
    return f
}()

public extension Date {
    /// The `YYYY-MM-DD` day (in the phone's time zone) the Yilian API takes.
    var yilianDay: String { dayFormat.string(from: self) }

    /// Epoch milliseconds, as the Yilian API takes an instant.
    var yilianMillis: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }

    /// The instant of epoch milliseconds.
    init(yilianMillis: Int64) { self.init(timeIntervalSince1970: TimeInterval(yilianMillis) / 1000) }

    /// The start of a `YYYY-MM-DD` day, or nil when it does not parse.
    init?(yilianDay: String) {
        guard let date = dayFormat.date(from: yilianDay) else { return nil }
        self = date
    }
}

public extension Visit {
    /// When the visit took place.
    var time: Date { Date(yilianMillis: at) }
}

public extension DueFollowUp {
    /// Day the follow-up is due.
    var dueDate: Date? { Date(yilianDay: due) }
}
