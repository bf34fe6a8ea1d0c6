//! Timestamp parsing for the filelog `timestamp` block, compatible with the OpenTelemetry Collector's stanza library.
//!
//! Three layout types are supported, as in stanza:
//!
//! * `gotime`: a Go reference layout such as `2006-01-02T15:04:05.999999999Z07:00`, parsed with the semantics of Go's
//!   `time.ParseInLocation` (space runs in the layout match space runs in the value, fractional seconds may follow a
//!   seconds field even when the layout has none, two-digit years `>= 69` are 19xx, month and weekday names are
//!   case-insensitive, weekdays are checked for syntax only).
//! * `strptime` (the default): a strptime-like layout such as `%Y-%m-%d %H:%M:%S`, translated directive by directive
//!   into Go layout elements with the table of stanza's ctimefmt, then parsed like `gotime`. Text outside directives is
//!   always matched literally, even when it would spell a Go layout element (`Jan`, `2006`, ...).
//! * `epoch`: seconds, milliseconds, microseconds or nanoseconds since the Unix epoch (`s`, `ms`, `us`, `ns`), or
//!   seconds with a fractional part counted in one of the smaller units (`s.ms`, `s.us`, `s.ns`).
//!
//! Behaviour of stanza's time parser that is reproduced on top of Go's:
//!
//! * Without a configured location, a layout ending in a literal `Z` is read in UTC, any other in the local zone.
//! * When the parsed time carries a zero UTC offset under a zone name other than `UTC` (for example an abbreviation
//!   such as `EST` that the location does not use), that name is loaded as a location and the value is parsed again
//!   in it; a name that is not a loadable location makes the value fail.
//! * A time whose year is not positive (a layout without a year, such as syslog's `Jan _2 15:04:05`) gets the current
//!   year, or the previous year when that would put it more than seven days in the future.
//!
//! Civil times that fall in a daylight-saving gap or overlap of the location are resolved with jiff's "compatible"
//! strategy: a time in a gap moves forward by the length of the gap, and in an overlap the earlier instant is taken.
//!
//! Parsed times are returned as Unix nanoseconds; times before 1970 are rejected.

use std::fmt;
use std::sync::OnceLock;

use jiff::civil::DateTime;
use jiff::tz::{TimeZone, TimeZoneOffsetInfo};
use jiff::{Timestamp, ToSpan, Zoned};

/// How a timestamp layout is written.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LayoutType {
    /// strptime-like directives such as `%Y-%m-%d`.
    #[default]
    Strptime,
    /// A Go reference layout such as `2006-01-02`.
    Gotime,
    /// A number of seconds (or smaller units) since the Unix epoch.
    Epoch,
}

/// A compiled timestamp layout together with the location used for values that carry no zone.
pub struct TimeParser {
    layout_type: LayoutType,
    layout: String,
    kind: Kind,
}

/// What a layout compiled to: Go layout elements and a location, or an epoch unit.
enum Kind {
    Layout { elems: Vec<Elem>, location: Location },
    Epoch(EpochUnit),
}

impl fmt::Debug for TimeParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("TimeParser");
        out.field("layout_type", &self.layout_type).field("layout", &self.layout);
        if let Kind::Layout { location, .. } = &self.kind {
            out.field("location", &location.name);
        }
        out.finish()
    }
}

impl TimeParser {
    /// Compiles a layout.
    ///
    /// `location` is an IANA zone name (`America/New_York`), `UTC` or `Local`; `None` (or an empty name) means the
    /// local system zone, except that a layout ending in a literal `Z` is read in UTC. The location is not used by
    /// `epoch` layouts. Errors are one-line messages naming the unsupported directive, epoch layout or location.
    pub fn new(layout_type: LayoutType, layout: &str, location: Option<&str>) -> Result<TimeParser, String> {
        if layout.is_empty() {
            return Err("timestamp layout must not be empty".to_owned());
        }
        let kind = match layout_type {
            LayoutType::Epoch => Kind::Epoch(EpochUnit::from_layout(layout).ok_or_else(|| {
                format!("invalid epoch layout {layout:?}: expected one of s, ms, us, ns, s.ms, s.us, s.ns")
            })?),
            LayoutType::Gotime | LayoutType::Strptime => {
                let elems = match layout_type {
                    LayoutType::Strptime => compile_strptime(layout)?,
                    _ => compile_gotime(layout.as_bytes()),
                };
                let ends_with_z = matches!(elems.last(), Some(Elem::Literal(lit)) if lit.ends_with(b"Z"));
                let location = match location.filter(|name| !name.is_empty()) {
                    Some(name) => Location::new(
                        name,
                        load_location(name).ok_or_else(|| format!("unknown timestamp location {name:?}"))?,
                    ),
                    None if ends_with_z => Location::new("UTC", TimeZone::UTC),
                    None => Location::new("Local", TimeZone::system()),
                };
                Kind::Layout { elems, location }
            }
        };
        Ok(TimeParser { layout_type, layout: layout.to_owned(), kind })
    }

    /// Parses a string into Unix nanoseconds.
    ///
    /// Fails when the value does not match the layout, is not a valid date, or lies before 1970.
    pub fn parse_str(&self, value: &str) -> Result<u64, String> {
        self.parse_str_at(value, None)
    }

    /// Parses an integer value; only `epoch` layouts accept numbers (`s.*` layouts read it as whole seconds).
    pub fn parse_i64(&self, value: i64) -> Result<u64, String> {
        let unit = self.epoch_unit(&value)?;
        let scale = if unit.has_fraction() { NANOS_PER_SECOND } else { unit.scale() };
        epoch_nanos(i128::from(value) * scale, &value)
    }

    /// Parses a floating-point value; only `epoch` layouts accept numbers.
    ///
    /// `s.ms`, `s.us` and `s.ns` keep the fraction rounded to their unit; the other layouts truncate it.
    pub fn parse_f64(&self, value: f64) -> Result<u64, String> {
        let unit = self.epoch_unit(&value)?;
        if !value.is_finite() {
            return Err(format!("invalid value {value} for epoch layout {:?}", self.layout));
        }
        if value < 0.0 {
            return Err(format!("timestamp {value} is before 1970"));
        }
        if unit.has_fraction() {
            // As stanza does, print the number with the unit's precision and parse the text.
            return self.parse_epoch(unit, &format!("{value:.prec$}", prec = unit.fraction_digits()));
        }
        let whole = value.trunc();
        // Below 2^63 the conversion to i64 is exact; anything larger is out of range anyway.
        if whole >= -(i64::MIN as f64) {
            return Err(format!("timestamp {value} is too far in the future"));
        }
        epoch_nanos(i128::from(whole as i64) * unit.scale(), &value)
    }

    /// Parses a string; `now` overrides the current time used to complete year-less values.
    fn parse_str_at(&self, value: &str, now: Option<&Zoned>) -> Result<u64, String> {
        match &self.kind {
            Kind::Epoch(unit) => self.parse_epoch(*unit, value),
            Kind::Layout { elems, location } => {
                let (secs, nanos) = parse_like_stanza(elems, value.as_bytes(), location, now)
                    .map_err(|reason| format!("cannot parse {} as {:?}: {reason}", quote(value), self.layout))?;
                epoch_nanos(i128::from(secs) * NANOS_PER_SECOND + i128::from(nanos), &quote(value))
            }
        }
    }

    fn epoch_unit(&self, value: &dyn fmt::Display) -> Result<EpochUnit, String> {
        match self.kind {
            Kind::Epoch(unit) => Ok(unit),
            Kind::Layout { .. } => {
                Err(format!("numeric value {value} cannot be parsed with a {:?} layout", self.layout_type))
            }
        }
    }

    /// Stanza's epoch parsing of text: an integer, or for `s.*` exactly one `.` between two integers, the second
    /// counting units of the layout (so `1.5` with `s.ms` is 1 s 5 ms).
    fn parse_epoch(&self, unit: EpochUnit, value: &str) -> Result<u64, String> {
        let invalid = || format!("invalid value {} for epoch layout {:?}", quote(value), self.layout);
        let nanos = if unit.has_fraction() {
            let mut parts = value.split('.');
            let (Some(secs), Some(frac), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(invalid());
            };
            let negative = secs.starts_with('-');
            let secs: i64 = secs.parse().map_err(|_| invalid())?;
            let frac: i64 = frac.parse().map_err(|_| invalid())?;
            if negative {
                // "-0.5" would otherwise come out as half a second after the epoch.
                return Err(format!("timestamp {} is before 1970", quote(value)));
            }
            i128::from(secs) * NANOS_PER_SECOND + i128::from(frac) * unit.scale()
        } else {
            i128::from(value.parse::<i64>().map_err(|_| invalid())?) * unit.scale()
        };
        epoch_nanos(nanos, &quote(value))
    }
}

/// Checks that a time in nanoseconds since the epoch is representable as `u64` nanoseconds.
fn epoch_nanos(nanos: i128, value: &dyn fmt::Display) -> Result<u64, String> {
    if nanos < 0 {
        return Err(format!("timestamp {value} is before 1970"));
    }
    u64::try_from(nanos).map_err(|_| format!("timestamp {value} is too far in the future"))
}

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;
/// Longest prefix of a value quoted in error messages, in characters.
const MAX_QUOTED_CHARS: usize = 100;
/// Upper bound on the zone transitions examined when listing the abbreviations a location uses.
const MAX_TRANSITIONS: usize = 4096;

/// Quotes a value for an error message, cut after `MAX_QUOTED_CHARS` characters.
fn quote(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}...", &value[..cut]),
        None => format!("{value:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Epoch layouts.

/// An `epoch` layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EpochUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
    SecondsMillis,
    SecondsMicros,
    SecondsNanos,
}

impl EpochUnit {
    fn from_layout(layout: &str) -> Option<Self> {
        Some(match layout {
            "s" => Self::Seconds,
            "ms" => Self::Millis,
            "us" => Self::Micros,
            "ns" => Self::Nanos,
            "s.ms" => Self::SecondsMillis,
            "s.us" => Self::SecondsMicros,
            "s.ns" => Self::SecondsNanos,
            _ => return None,
        })
    }

    /// Whether values are written as `seconds.fraction`, the fraction counting units of `scale()` nanoseconds.
    fn has_fraction(self) -> bool {
        matches!(self, Self::SecondsMillis | Self::SecondsMicros | Self::SecondsNanos)
    }

    /// Nanoseconds per unit of the (integer or fractional) number.
    fn scale(self) -> i128 {
        match self {
            Self::Seconds => NANOS_PER_SECOND,
            Self::Millis | Self::SecondsMillis => 1_000_000,
            Self::Micros | Self::SecondsMicros => 1_000,
            Self::Nanos | Self::SecondsNanos => 1,
        }
    }

    fn fraction_digits(self) -> usize {
        match self {
            Self::SecondsMillis => 3,
            Self::SecondsMicros => 6,
            _ => 9,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Layout compilation.

/// One element of a compiled layout: text matched verbatim or a Go layout field.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Elem {
    Literal(Vec<u8>),
    Field(Field),
}

/// Go layout fields, named after the reference time element they stand for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    /// `January`
    LongMonth,
    /// `Jan`
    Month,
    /// `1`
    NumMonth,
    /// `01`
    ZeroMonth,
    /// `Monday`
    LongWeekDay,
    /// `Mon`
    WeekDay,
    /// `2`
    Day,
    /// `_2`
    UnderDay,
    /// `02`
    ZeroDay,
    /// `__2`
    UnderYearDay,
    /// `002`
    ZeroYearDay,
    /// `15`
    Hour,
    /// `3`
    Hour12,
    /// `03`
    ZeroHour12,
    /// `4`
    Minute,
    /// `04`
    ZeroMinute,
    /// `5`
    Second,
    /// `05`
    ZeroSecond,
    /// `2006`
    LongYear,
    /// `06`
    Year,
    /// `PM`
    UpperPm,
    /// `pm`
    LowerPm,
    /// `MST`
    ZoneName,
    /// `Z0700`
    IsoTz,
    /// `Z070000`
    IsoSecondsTz,
    /// `Z07`
    IsoShortTz,
    /// `Z07:00`
    IsoColonTz,
    /// `Z07:00:00`
    IsoColonSecondsTz,
    /// `-0700`
    NumTz,
    /// `-070000`
    NumSecondsTz,
    /// `-07`
    NumShortTz,
    /// `-07:00`
    NumColonTz,
    /// `-07:00:00`
    NumColonSecondsTz,
    /// `.000` or `,000`: exactly this many fractional digits.
    FracExact(usize),
    /// `.999` or `,999`: optional fraction with any number of digits.
    FracOptional,
}

impl Field {
    fn describe(self) -> &'static str {
        match self {
            Self::LongMonth | Self::Month => "month name",
            Self::NumMonth | Self::ZeroMonth => "month",
            Self::LongWeekDay | Self::WeekDay => "weekday name",
            Self::Day | Self::UnderDay | Self::ZeroDay => "day",
            Self::UnderYearDay | Self::ZeroYearDay => "day of year",
            Self::Hour | Self::Hour12 | Self::ZeroHour12 => "hour",
            Self::Minute | Self::ZeroMinute => "minute",
            Self::Second | Self::ZeroSecond => "second",
            Self::LongYear => "4-digit year",
            Self::Year => "2-digit year",
            Self::UpperPm => "AM/PM",
            Self::LowerPm => "am/pm",
            Self::ZoneName => "time zone name",
            Self::IsoTz
            | Self::IsoSecondsTz
            | Self::IsoShortTz
            | Self::IsoColonTz
            | Self::IsoColonSecondsTz
            | Self::NumTz
            | Self::NumSecondsTz
            | Self::NumShortTz
            | Self::NumColonTz
            | Self::NumColonSecondsTz => "UTC offset",
            Self::FracExact(_) | Self::FracOptional => "fractional seconds",
        }
    }
}

/// Appends literal bytes, merging them into a preceding literal (Go matches a layout's text between fields as one
/// unit, which matters for runs of spaces).
fn push_literal(elems: &mut Vec<Elem>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    match elems.last_mut() {
        Some(Elem::Literal(prev)) => prev.extend_from_slice(bytes),
        _ => elems.push(Elem::Literal(bytes.to_vec())),
    }
}

/// Splits a Go layout into literals and fields exactly as Go's `nextStdChunk` does.
fn compile_gotime(layout: &[u8]) -> Vec<Elem> {
    let mut elems = Vec::new();
    let mut rest = layout;
    while let Some((start, field, len)) = next_field(rest) {
        push_literal(&mut elems, rest.get(..start).unwrap_or_default());
        elems.push(Elem::Field(field));
        rest = rest.get(start + len..).unwrap_or_default();
    }
    push_literal(&mut elems, rest);
    elems
}

/// Finds the first Go layout field in `layout`: its start, kind and length in bytes.
fn next_field(layout: &[u8]) -> Option<(usize, Field, usize)> {
    let at = |i: usize| layout.get(i).copied();
    let has = |i: usize, s: &[u8]| layout.get(i..).is_some_and(|tail| tail.starts_with(s));
    let lower_at = |i: usize| at(i).is_some_and(|c| c.is_ascii_lowercase());
    for (i, &c) in layout.iter().enumerate() {
        let found = match c {
            b'J' if has(i, b"January") => Some((Field::LongMonth, 7)),
            b'J' if has(i, b"Jan") && !lower_at(i + 3) => Some((Field::Month, 3)),
            b'M' if has(i, b"Monday") => Some((Field::LongWeekDay, 6)),
            b'M' if has(i, b"Mon") && !lower_at(i + 3) => Some((Field::WeekDay, 3)),
            b'M' if has(i, b"MST") => Some((Field::ZoneName, 3)),
            b'0' => match at(i + 1) {
                Some(b'1') => Some((Field::ZeroMonth, 2)),
                Some(b'2') => Some((Field::ZeroDay, 2)),
                Some(b'3') => Some((Field::ZeroHour12, 2)),
                Some(b'4') => Some((Field::ZeroMinute, 2)),
                Some(b'5') => Some((Field::ZeroSecond, 2)),
                Some(b'6') => Some((Field::Year, 2)),
                _ if has(i, b"002") => Some((Field::ZeroYearDay, 3)),
                _ => None,
            },
            b'1' if at(i + 1) == Some(b'5') => Some((Field::Hour, 2)),
            b'1' => Some((Field::NumMonth, 1)),
            b'2' if has(i, b"2006") => Some((Field::LongYear, 4)),
            b'2' => Some((Field::Day, 1)),
            // "_2006" is a literal underscore followed by the year.
            b'_' if has(i, b"_2006") => return Some((i + 1, Field::LongYear, 4)),
            b'_' if has(i, b"_2") => Some((Field::UnderDay, 2)),
            b'_' if has(i, b"__2") => Some((Field::UnderYearDay, 3)),
            b'3' => Some((Field::Hour12, 1)),
            b'4' => Some((Field::Minute, 1)),
            b'5' => Some((Field::Second, 1)),
            b'P' if at(i + 1) == Some(b'M') => Some((Field::UpperPm, 2)),
            b'p' if at(i + 1) == Some(b'm') => Some((Field::LowerPm, 2)),
            b'-' | b'Z' => {
                let iso = c == b'Z';
                [
                    (&b"070000"[..], Field::NumSecondsTz, Field::IsoSecondsTz),
                    (b"07:00:00", Field::NumColonSecondsTz, Field::IsoColonSecondsTz),
                    (b"0700", Field::NumTz, Field::IsoTz),
                    (b"07:00", Field::NumColonTz, Field::IsoColonTz),
                    (b"07", Field::NumShortTz, Field::IsoShortTz),
                ]
                .into_iter()
                .find(|(pattern, _, _)| has(i + 1, pattern))
                .map(|(pattern, num, iso_field)| (if iso { iso_field } else { num }, pattern.len() + 1))
            }
            b'.' | b',' => match at(i + 1) {
                Some(digit @ (b'0' | b'9')) => {
                    let run = layout.get(i + 1..).unwrap_or_default().iter().take_while(|&&d| d == digit).count();
                    // The run of digits must end the number: ".0001" is not a fraction.
                    if at(i + 1 + run).is_some_and(|d| d.is_ascii_digit()) {
                        None
                    } else if digit == b'0' {
                        // Go keeps the digit count in 12 bits.
                        Some((Field::FracExact(run % 4096), run + 1))
                    } else {
                        Some((Field::FracOptional, run + 1))
                    }
                }
                _ => None,
            },
            _ => None,
        };
        if let Some((field, len)) = found {
            return Some((i, field, len));
        }
    }
    None
}

/// The Go layout that stanza's ctimefmt substitutes for a strptime directive.
fn strptime_directive(directive: char) -> Option<&'static str> {
    Some(match directive {
        'Y' => "2006",
        'y' => "06",
        'm' => "01",
        'o' => "_1",
        'q' => "1",
        'b' | 'h' => "Jan",
        'B' => "January",
        'd' => "02",
        'e' => "_2",
        'g' => "2",
        'a' => "Mon",
        'A' => "Monday",
        'H' => "15",
        'l' => "3",
        'I' => "03",
        'p' => "PM",
        'P' => "pm",
        'M' => "04",
        'S' => "05",
        'L' => "999",
        'f' => "999999",
        's' => "999999999",
        'Z' => "MST",
        'z' => "Z0700",
        'w' => "-070000",
        'i' => "-07",
        'j' => "-07:00",
        'k' => "-07:00:00",
        'D' | 'x' => "01/02/2006",
        'F' => "2006-01-02",
        'T' | 'X' => "15:04:05",
        'r' => "03:04:05 pm",
        'R' => "15:04",
        'c' => "Mon Jan 02 15:04:05 2006",
        'n' => "\n",
        't' => "\t",
        '%' => "%",
        _ => return None,
    })
}

/// Translates a strptime layout. Directives become the fields of their Go substitute; all other text stays literal.
///
/// As in ctimefmt, a directive is `%` followed by any character but a newline; a `%` at the end of the layout or
/// before a newline is literal text.
fn compile_strptime(layout: &str) -> Result<Vec<Elem>, String> {
    let mut elems = Vec::new();
    let mut chars = layout.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        let directive = match chars.peek() {
            Some(&next) if c == '%' && next != '\n' => next,
            _ => {
                push_literal(&mut elems, c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
        };
        chars.next();
        if matches!(directive, 'L' | 'f' | 's') {
            // The Go substitute is a run of 9s, which is a fractional-seconds field only right after '.' or ','.
            match elems.last_mut() {
                Some(Elem::Literal(lit)) if matches!(lit.last(), Some(b'.' | b',')) => {
                    lit.pop();
                    if lit.is_empty() {
                        elems.pop();
                    }
                    elems.push(Elem::Field(Field::FracOptional));
                }
                _ => {
                    return Err(format!(
                        "strptime directive %{directive} in layout {layout:?} must directly follow '.' or ','"
                    ));
                }
            }
            continue;
        }
        let go_layout = strptime_directive(directive).ok_or_else(|| {
            format!("unsupported strptime directive \"%{}\" in layout {layout:?}", directive.escape_debug())
        })?;
        for elem in compile_gotime(go_layout.as_bytes()) {
            match elem {
                Elem::Literal(lit) => push_literal(&mut elems, &lit),
                field => elems.push(field),
            }
        }
    }
    Ok(elems)
}

// ---------------------------------------------------------------------------------------------------------------------
// Locations.

/// A time zone used to interpret values, with the abbreviations it has used (Go's zone list), computed on demand.
struct Location {
    name: String,
    tz: TimeZone,
    zones: OnceLock<Vec<(String, i32)>>,
}

impl Location {
    fn new(name: &str, tz: TimeZone) -> Self {
        Location { name: name.to_owned(), tz, zones: OnceLock::new() }
    }

    fn info(&self, secs: i64) -> Result<TimeZoneOffsetInfo<'_>, String> {
        let ts = Timestamp::from_second(secs).map_err(|_| "time is out of range".to_owned())?;
        Ok(self.tz.to_offset_info(ts))
    }

    /// Distinct (abbreviation, offset) pairs of the zone in order of first use.
    fn zones(&self) -> &[(String, i32)] {
        self.zones.get_or_init(|| {
            let mut zones: Vec<(String, i32)> = Vec::new();
            let mut add = |abbr: &str, offset: i32| {
                if !zones.iter().any(|(a, o)| a == abbr && *o == offset) {
                    zones.push((abbr.to_owned(), offset));
                }
            };
            let first = self.tz.to_offset_info(Timestamp::MIN);
            add(first.abbreviation(), first.offset().seconds());
            // Transitions up to a little after now: rule-generated future transitions only repeat these zones.
            let horizon = Timestamp::now().as_second().saturating_add(800 * SECONDS_PER_DAY);
            let start = Timestamp::from_second(horizon).unwrap_or(Timestamp::MAX);
            let mut transitions: Vec<_> = self.tz.preceding(start).take(MAX_TRANSITIONS).collect();
            transitions.reverse();
            for transition in &transitions {
                add(transition.abbreviation(), transition.offset().seconds());
            }
            zones
        })
    }

    /// Go's `Location.lookupName`: the offset of the zone called `name` around the civil time `unix` (read as UTC).
    fn lookup_name(&self, name: &str, unix: i64) -> Option<i32> {
        let zones = self.zones();
        let matching = || zones.iter().filter(|(abbr, _)| abbr == name);
        // Prefer a zone of that name that was actually in effect at that time.
        for (abbr, offset) in matching() {
            if let Ok(info) = self.info(unix - i64::from(*offset))
                && info.abbreviation() == abbr
            {
                return Some(info.offset().seconds());
            }
        }
        matching().next().map(|(_, offset)| *offset)
    }

    /// Go's `time.Date` in this location, except that civil times in a gap or an overlap are resolved the way jiff's
    /// "compatible" mode does (Go's choice depends on the sign of the offset).
    fn civil_to_secs(&self, date: (i64, i64, i64), clock: (i64, i64, i64)) -> Result<i64, String> {
        let narrow = |n: i64| i8::try_from(n).map_err(|_| "time is out of range".to_owned());
        let year = i16::try_from(date.0).map_err(|_| "time is out of range".to_owned())?;
        let dt = DateTime::new(
            year,
            narrow(date.1)?,
            narrow(date.2)?,
            narrow(clock.0)?,
            narrow(clock.1)?,
            narrow(clock.2)?,
            0,
        )
        .map_err(|_| "time is out of range".to_owned())?;
        let ts = self.tz.to_ambiguous_timestamp(dt).compatible().map_err(|_| "time is out of range".to_owned())?;
        Ok(ts.as_second())
    }

    /// The UTC offset, in seconds, at `secs` of a result expressed in `fixed_zone` or, when `None`, in this location.
    fn offset_of(&self, fixed_zone: Option<&(String, i32)>, secs: i64) -> Result<i32, String> {
        match fixed_zone {
            Some((_, offset)) => Ok(*offset),
            None => Ok(self.info(secs)?.offset().seconds()),
        }
    }
}

/// Go's `time.LoadLocation`, backed by the system time zone database.
fn load_location(name: &str) -> Option<TimeZone> {
    match name {
        "" | "UTC" => Some(TimeZone::UTC),
        "Local" => Some(TimeZone::system()),
        _ if name.contains("..") || name.starts_with(['/', '\\']) => None,
        _ => TimeZone::get(name).ok(),
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Parsing.

/// An instant produced by the Go parser and the zone it is expressed in: `None` for the location used to parse, or a
/// fabricated fixed zone (name and offset in seconds).
struct Parsed {
    secs: i64,
    nanos: i64,
    fixed_zone: Option<(String, i32)>,
}

/// Stanza's `parseGotime` followed by `SetTimestampYear`: returns Unix seconds and nanoseconds.
fn parse_like_stanza(
    elems: &[Elem],
    value: &[u8],
    location: &Location,
    now: Option<&Zoned>,
) -> Result<(i64, i64), String> {
    let parsed = go_parse(elems, value, location)?;
    let (zone_name, offset) = match &parsed.fixed_zone {
        Some((name, offset)) => (name.clone(), *offset),
        None => {
            let info = location.info(parsed.secs)?;
            (info.abbreviation().to_owned(), info.offset().seconds())
        }
    };
    if offset != 0 || zone_name == "UTC" {
        return set_timestamp_year(parsed, location, now);
    }
    // A zero offset under another name usually means an abbreviation the location does not know: retry with the
    // abbreviation as the location, as stanza does.
    let tz = load_location(&zone_name)
        .ok_or_else(|| format!("time zone {zone_name:?} is not used by the location and is not a known location"))?;
    let alternative = Location::new(&zone_name, tz);
    match go_parse(elems, value, &alternative) {
        Ok(reparsed) => set_timestamp_year(reparsed, &alternative, now),
        Err(_) => set_timestamp_year(parsed, location, now),
    }
}

/// Stanza's `SetTimestampYear`: a time whose year is not positive is moved to the current year, or to the year before
/// when that would put it more than seven days after `now` (the current time when `None`).
fn set_timestamp_year(parsed: Parsed, location: &Location, now: Option<&Zoned>) -> Result<(i64, i64), String> {
    let offset = location.offset_of(parsed.fixed_zone.as_ref(), parsed.secs)?;
    let (date, clock) = civil_from_secs(parsed.secs + i64::from(offset));
    if date.0 > 0 {
        return Ok((parsed.secs, parsed.nanos));
    }
    let build = |date: (i64, i64, i64), clock: (i64, i64, i64)| -> Result<i64, String> {
        // Like Go's time.Date, an out-of-range day rolls over into the next month (February 29 -> March 1).
        let date = civil_from_days(days_from_civil(date.0, date.1, 1) + date.2 - 1);
        match &parsed.fixed_zone {
            Some((_, offset)) => {
                Ok(days_from_civil(date.0, date.1, date.2) * SECONDS_PER_DAY + clock.0 * 3600 + clock.1 * 60 + clock.2
                    - i64::from(*offset))
            }
            None => location.civil_to_secs(date, clock),
        }
    };
    let now = now.cloned().unwrap_or_else(Zoned::now);
    let limit = now.checked_add(7.days()).map_err(|_| "current time is out of range".to_owned())?.timestamp();
    let mut secs = build((i64::from(now.year()), date.1, date.2), clock)?;
    if i128::from(secs) * NANOS_PER_SECOND + i128::from(parsed.nanos) > limit.as_nanosecond() {
        let offset = location.offset_of(parsed.fixed_zone.as_ref(), secs)?;
        let (date, clock) = civil_from_secs(secs + i64::from(offset));
        secs = build((date.0 - 1, date.1, date.2), clock)?;
    }
    Ok((secs, parsed.nanos))
}

/// Fields collected while scanning a value, with Go's defaults.
struct Fields {
    year: i64,
    month: i64,
    day: i64,
    yday: i64,
    hour: i64,
    min: i64,
    sec: i64,
    nanos: i64,
    am: bool,
    pm: bool,
    utc: bool,
    zone_offset: Option<i64>,
    zone_name: Option<String>,
}

/// Go's `time.parse(layout, value, location, location)`.
fn go_parse(elems: &[Elem], value: &[u8], location: &Location) -> Result<Parsed, String> {
    let fields = scan(elems, value)?;
    resolve(fields, location)
}

/// The scanning loop of Go's `time.parse`: matches `value` against the layout elements and collects the fields.
fn scan(elems: &[Elem], value: &[u8]) -> Result<Fields, String> {
    let mut f = Fields {
        year: 0,
        month: -1,
        day: -1,
        yday: -1,
        hour: 0,
        min: 0,
        sec: 0,
        nanos: 0,
        am: false,
        pm: false,
        utc: false,
        zone_offset: None,
        zone_name: None,
    };
    let mut v = value;
    for (index, elem) in elems.iter().enumerate() {
        let field = match elem {
            Elem::Literal(lit) => {
                v = skip(v, lit).ok_or_else(|| format!("expected {:?}", String::from_utf8_lossy(lit)))?;
                continue;
            }
            Elem::Field(field) => *field,
        };
        let bad = || format!("expected {}", field.describe());
        let out_of_range = || format!("{} out of range", field.describe());
        match field {
            Field::Year => {
                let (digits, rest) = split(v, 2).ok_or_else(bad)?;
                let year = atoi(digits).ok_or_else(bad)?;
                f.year = if year >= 69 { year + 1900 } else { year + 2000 };
                v = rest;
            }
            Field::LongYear => {
                let (digits, rest) = split(v, 4).filter(|(d, _)| is_digit_at(d, 0)).ok_or_else(bad)?;
                f.year = atoi(digits).ok_or_else(bad)?;
                v = rest;
            }
            Field::Month | Field::LongMonth => {
                let names = if field == Field::Month { &SHORT_MONTHS } else { &LONG_MONTHS };
                let (index, rest) = lookup(names, v).ok_or_else(bad)?;
                f.month = index as i64 + 1;
                v = rest;
            }
            Field::NumMonth | Field::ZeroMonth => {
                let (month, rest) = getnum(v, field == Field::ZeroMonth).ok_or_else(bad)?;
                if !(1..=12).contains(&month) {
                    return Err(out_of_range());
                }
                f.month = month;
                v = rest;
            }
            Field::WeekDay | Field::LongWeekDay => {
                let names = if field == Field::WeekDay { &SHORT_DAYS } else { &LONG_DAYS };
                v = lookup(names, v).ok_or_else(bad)?.1;
            }
            Field::Day | Field::UnderDay | Field::ZeroDay => {
                if field == Field::UnderDay {
                    v = v.strip_prefix(b" ").unwrap_or(v);
                }
                // Any one- or two-digit day; the date is validated once complete.
                (f.day, v) = getnum(v, field == Field::ZeroDay).ok_or_else(bad)?;
            }
            Field::UnderYearDay | Field::ZeroYearDay => {
                if field == Field::UnderYearDay {
                    for _ in 0..2 {
                        v = v.strip_prefix(b" ").unwrap_or(v);
                    }
                }
                (f.yday, v) = getnum3(v, field == Field::ZeroYearDay).ok_or_else(bad)?;
            }
            Field::Hour => {
                (f.hour, v) = getnum(v, false).ok_or_else(bad)?;
                if f.hour >= 24 {
                    return Err(out_of_range());
                }
            }
            Field::Hour12 | Field::ZeroHour12 => {
                (f.hour, v) = getnum(v, field == Field::ZeroHour12).ok_or_else(bad)?;
                if f.hour > 12 {
                    return Err(out_of_range());
                }
            }
            Field::Minute | Field::ZeroMinute => {
                (f.min, v) = getnum(v, field == Field::ZeroMinute).ok_or_else(bad)?;
                if f.min >= 60 {
                    return Err(out_of_range());
                }
            }
            Field::Second | Field::ZeroSecond => {
                (f.sec, v) = getnum(v, field == Field::ZeroSecond).ok_or_else(bad)?;
                if f.sec >= 60 {
                    return Err(out_of_range());
                }
                // A fraction right after the seconds is accepted even when the layout has none.
                let fraction_follows =
                    matches!(v, [sep, digit, ..] if is_comma_or_period(*sep) && digit.is_ascii_digit());
                let layout_has_fraction = elems.get(index + 1..).unwrap_or_default().iter().find_map(|e| match e {
                    Elem::Field(next) => Some(matches!(next, Field::FracExact(_) | Field::FracOptional)),
                    Elem::Literal(_) => None,
                });
                if fraction_follows && layout_has_fraction != Some(true) {
                    let len = 1 + v.iter().skip(1).take_while(|c| c.is_ascii_digit()).count();
                    f.nanos = parse_nanos(v, len)?;
                    v = v.get(len..).unwrap_or_default();
                }
            }
            Field::UpperPm | Field::LowerPm => {
                let (text, rest) = split(v, 2).ok_or_else(bad)?;
                let (am, pm) = if field == Field::UpperPm { (b"AM", b"PM") } else { (b"am", b"pm") };
                if text == am {
                    f.am = true;
                } else if text == pm {
                    f.pm = true;
                } else {
                    return Err(bad());
                }
                v = rest;
            }
            Field::IsoTz | Field::IsoSecondsTz | Field::IsoShortTz | Field::IsoColonTz | Field::IsoColonSecondsTz
                if v.first() == Some(&b'Z') =>
            {
                f.utc = true;
                v = v.get(1..).unwrap_or_default();
            }
            Field::IsoTz
            | Field::IsoSecondsTz
            | Field::IsoShortTz
            | Field::IsoColonTz
            | Field::IsoColonSecondsTz
            | Field::NumTz
            | Field::NumSecondsTz
            | Field::NumShortTz
            | Field::NumColonTz
            | Field::NumColonSecondsTz => {
                let (offset, rest) = parse_numeric_offset(field, v)?;
                f.zone_offset = Some(offset);
                v = rest;
            }
            Field::ZoneName => {
                if let Some(rest) = v.strip_prefix(b"UTC") {
                    f.utc = true;
                    v = rest;
                } else {
                    let (name, rest) = split(v, parse_time_zone(v).ok_or_else(bad)?).ok_or_else(bad)?;
                    f.zone_name = Some(String::from_utf8_lossy(name).into_owned());
                    v = rest;
                }
            }
            Field::FracExact(digits) => {
                let len = 1 + digits;
                if v.len() < len {
                    return Err(bad());
                }
                f.nanos = parse_nanos(v, len)?;
                v = v.get(len..).unwrap_or_default();
            }
            Field::FracOptional => {
                if matches!(v, [sep, digit, ..] if is_comma_or_period(*sep) && digit.is_ascii_digit()) {
                    let len = 1 + v.iter().skip(1).take_while(|c| c.is_ascii_digit()).count();
                    f.nanos = parse_nanos(v, len)?;
                    v = v.get(len..).unwrap_or_default();
                }
            }
        }
    }
    if !v.is_empty() {
        return Err(format!("extra text {}", quote(&String::from_utf8_lossy(v))));
    }
    Ok(f)
}

/// Turns scanned fields into an instant, as the end of Go's `time.parse` does.
fn resolve(mut f: Fields, location: &Location) -> Result<Parsed, String> {
    if f.pm && f.hour < 12 {
        f.hour += 12;
    } else if f.am && f.hour == 12 {
        f.hour = 0;
    }
    if f.yday >= 0 {
        let mut yday = f.yday;
        let (mut month, mut day) = (0, 0);
        if is_leap(f.year) {
            if yday == 31 + 29 {
                (month, day) = (2, 29);
            } else if yday > 31 + 29 {
                yday -= 1;
            }
        }
        if !(1..=365).contains(&yday) {
            return Err("day of year out of range".to_owned());
        }
        if month == 0 {
            month = (yday - 1) / 31 + 1;
            if days_before(month + 1) < yday {
                month += 1;
            }
            day = yday - days_before(month);
        }
        if f.month >= 0 && f.month != month {
            return Err("day of year does not match month".to_owned());
        }
        if f.day >= 0 && f.day != day {
            return Err("day of year does not match day".to_owned());
        }
        (f.month, f.day) = (month, day);
    } else {
        if f.month < 0 {
            f.month = 1;
        }
        if f.day < 0 {
            f.day = 1;
        }
    }
    if f.day < 1 || f.day > days_in(f.month, f.year) {
        return Err("day out of range".to_owned());
    }

    let civil = days_from_civil(f.year, f.month, f.day) * SECONDS_PER_DAY + f.hour * 3600 + f.min * 60 + f.sec;
    let nanos = f.nanos;
    if f.utc {
        return Ok(Parsed { secs: civil, nanos, fixed_zone: Some(("UTC".to_owned(), 0)) });
    }
    if let Some(offset) = f.zone_offset {
        let secs = civil - offset;
        let info = location.info(secs)?;
        let offset = i32::try_from(offset).map_err(|_| "UTC offset out of range".to_owned())?;
        let local =
            info.offset().seconds() == offset && f.zone_name.as_deref().is_none_or(|name| name == info.abbreviation());
        let fixed_zone = if local { None } else { Some((f.zone_name.unwrap_or_default(), offset)) };
        return Ok(Parsed { secs, nanos, fixed_zone });
    }
    if let Some(name) = f.zone_name {
        if let Some(offset) = location.lookup_name(&name, civil) {
            return Ok(Parsed { secs: civil - i64::from(offset), nanos, fixed_zone: None });
        }
        // Unknown abbreviation: Go fabricates a zone with offset 0 ("GMT+h" gets h hours) but keeps the civil time as
        // UTC.
        let offset = match name.strip_prefix("GMT") {
            Some(hours) if !hours.is_empty() => atoi(hours.as_bytes()).unwrap_or(0) * 3600,
            _ => 0,
        };
        let offset = i32::try_from(offset).map_err(|_| "UTC offset out of range".to_owned())?;
        return Ok(Parsed { secs: civil, nanos, fixed_zone: Some((name, offset)) });
    }
    let secs = location.civil_to_secs((f.year, f.month, f.day), (f.hour, f.min, f.sec))?;
    Ok(Parsed { secs, nanos, fixed_zone: None })
}

const SHORT_MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const SHORT_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

fn split(v: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    v.split_at_checked(n)
}

fn is_digit_at(v: &[u8], i: usize) -> bool {
    v.get(i).is_some_and(u8::is_ascii_digit)
}

fn is_comma_or_period(c: u8) -> bool {
    c == b'.' || c == b','
}

/// Go's `skip`: removes `prefix` from `value`, a run of spaces in the prefix matching a run of spaces in the value.
fn skip<'a>(mut value: &'a [u8], mut prefix: &[u8]) -> Option<&'a [u8]> {
    while let Some((&p, prefix_rest)) = prefix.split_first() {
        if p == b' ' {
            if value.first().is_some_and(|&c| c != b' ') {
                return None;
            }
            prefix = trim_spaces(prefix);
            value = trim_spaces(value);
            continue;
        }
        match value.split_first() {
            Some((&c, value_rest)) if c == p => {
                value = value_rest;
                prefix = prefix_rest;
            }
            _ => return None,
        }
    }
    Some(value)
}

fn trim_spaces(v: &[u8]) -> &[u8] {
    let n = v.iter().take_while(|&&c| c == b' ').count();
    v.get(n..).unwrap_or_default()
}

/// Go's `lookup`: the first name in `names` that prefixes `v`, ignoring ASCII case.
fn lookup<'a>(names: &[&str], v: &'a [u8]) -> Option<(usize, &'a [u8])> {
    names.iter().enumerate().find_map(|(i, name)| {
        let (head, rest) = split(v, name.len())?;
        let same = head.iter().zip(name.as_bytes()).all(|(&a, &b)| {
            a == b || {
                let (a, b) = (a | 0x20, b | 0x20);
                a == b && a.is_ascii_lowercase()
            }
        });
        same.then_some((i, rest))
    })
}

/// Go's `getnum`: one or two digits (exactly two when `fixed`).
fn getnum(v: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    match v {
        [a, b, rest @ ..] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some((i64::from(a - b'0') * 10 + i64::from(b - b'0'), rest))
        }
        [a, rest @ ..] if a.is_ascii_digit() && !fixed => Some((i64::from(a - b'0'), rest)),
        _ => None,
    }
}

/// Go's `getnum3`: one to three digits (exactly three when `fixed`).
fn getnum3(v: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    let len = v.iter().take(3).take_while(|c| c.is_ascii_digit()).count();
    if len == 0 || (fixed && len != 3) {
        return None;
    }
    let (digits, rest) = split(v, len)?;
    Some((digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')), rest))
}

/// Go's `leadingInt`: the leading decimal digits of `s` and the rest, or `None` on overflow past 2^63.
fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
    let len = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let (digits, rest) = split(s, len)?;
    let mut x: u64 = 0;
    for &d in digits {
        if x > (1 << 63) / 10 {
            return None;
        }
        x = x * 10 + u64::from(d - b'0');
        if x > 1 << 63 {
            return None;
        }
    }
    Some((x, rest))
}

/// Go's time-package `atoi`: an optionally signed decimal integer spanning all of `s` (the empty string is 0).
fn atoi(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    let (x, rest) = leading_int(digits)?;
    if !rest.is_empty() {
        return None;
    }
    // Go converts with int(x), wrapping 2^63 to the minimum.
    let x = x as i64;
    Some(if negative { x.wrapping_neg() } else { x })
}

/// Go's `parseNanoseconds`: `v[..len]` is a separator and digits; at most nine digits count.
fn parse_nanos(v: &[u8], len: usize) -> Result<i64, String> {
    let bad = || "expected fractional seconds".to_owned();
    if !v.first().is_some_and(|&c| is_comma_or_period(c)) {
        return Err(bad());
    }
    let len = len.min(10);
    let mut nanos = atoi(v.get(1..len).ok_or_else(bad)?).ok_or_else(bad)?;
    if nanos < 0 {
        return Err("fractional second out of range".to_owned());
    }
    for _ in len..10 {
        nanos *= 10;
    }
    Ok(nanos)
}

/// Parses the numeric offset fields (`-0700`, `Z07:00`, ... once a `Z` has been ruled out) into seconds east of UTC.
fn parse_numeric_offset(field: Field, v: &[u8]) -> Result<(i64, &[u8]), String> {
    let bad = || format!("expected {}", field.describe());
    const ZERO: [u8; 2] = *b"00";
    let (sign, hh, mm, ss, rest) = match (field, v) {
        (Field::IsoColonTz | Field::NumColonTz, [sign, h1, h2, b':', m1, m2, rest @ ..]) => {
            (*sign, [*h1, *h2], [*m1, *m2], ZERO, rest)
        }
        (Field::IsoShortTz | Field::NumShortTz, [sign, h1, h2, rest @ ..]) => (*sign, [*h1, *h2], ZERO, ZERO, rest),
        (
            Field::IsoColonSecondsTz | Field::NumColonSecondsTz,
            [sign, h1, h2, b':', m1, m2, b':', s1, s2, rest @ ..],
        ) => (*sign, [*h1, *h2], [*m1, *m2], [*s1, *s2], rest),
        (Field::IsoSecondsTz | Field::NumSecondsTz, [sign, h1, h2, m1, m2, s1, s2, rest @ ..]) => {
            (*sign, [*h1, *h2], [*m1, *m2], [*s1, *s2], rest)
        }
        (Field::IsoTz | Field::NumTz, [sign, h1, h2, m1, m2, rest @ ..]) => (*sign, [*h1, *h2], [*m1, *m2], ZERO, rest),
        _ => return Err(bad()),
    };
    let two = |d: [u8; 2]| getnum(&d, true).map(|(n, _)| n);
    let (Some(hours), Some(minutes), Some(seconds)) = (two(hh), two(mm), two(ss)) else {
        return Err(bad());
    };
    // Like Go, accept offsets of 24 hours, 60 minutes or 60 seconds.
    if hours > 24 || minutes > 60 || seconds > 60 {
        return Err("UTC offset out of range".to_owned());
    }
    let offset = (hours * 60 + minutes) * 60 + seconds;
    match sign {
        b'+' => Ok((offset, rest)),
        b'-' => Ok((-offset, rest)),
        _ => Err(bad()),
    }
}

/// Go's `parseTimeZone`: the length of the zone abbreviation at the start of `v`.
fn parse_time_zone(v: &[u8]) -> Option<usize> {
    if v.len() < 3 {
        return None;
    }
    if v.starts_with(b"ChST") || v.starts_with(b"MeST") {
        return Some(4);
    }
    if let Some(rest) = v.strip_prefix(b"GMT") {
        return Some(if rest.is_empty() { 3 } else { 3 + parse_signed_offset(rest) });
    }
    if v.starts_with(b"+") || v.starts_with(b"-") {
        return Some(parse_signed_offset(v)).filter(|&n| n > 0);
    }
    let upper = v.iter().take(6).take_while(|c| c.is_ascii_uppercase()).count();
    match upper {
        3 => Some(3),
        4 if v.get(3) == Some(&b'T') || v.starts_with(b"WITA") => Some(4),
        5 if v.get(4) == Some(&b'T') => Some(5),
        _ => None,
    }
}

/// Go's `parseSignedOffset`: the length of a leading `+h`/`-h` with h in 0..=23, or 0.
fn parse_signed_offset(v: &[u8]) -> usize {
    let Some((b'+' | b'-', digits)) = v.split_first() else {
        return 0;
    };
    match leading_int(digits) {
        Some((hours, rest)) if rest.len() < digits.len() && hours <= 23 => v.len() - rest.len(),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Proleptic Gregorian calendar arithmetic.

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days of a non-leap year before the first of `month` (1..=13).
fn days_before(month: i64) -> i64 {
    const DAYS_BEFORE: [i64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
    usize::try_from(month - 1).ok().and_then(|i| DAYS_BEFORE.get(i)).copied().unwrap_or(365)
}

/// Days from 1970-01-01 to the given date (month 1..=12).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` days after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400;
    (if month <= 2 { year + 1 } else { year }, month, day)
}

/// The civil date and time of day of `secs` seconds after 1970-01-01T00:00:00.
fn civil_from_secs(secs: i64) -> ((i64, i64, i64), (i64, i64, i64)) {
    let time = secs.rem_euclid(SECONDS_PER_DAY);
    (civil_from_days(secs.div_euclid(SECONDS_PER_DAY)), (time / 3600, time / 60 % 60, time % 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: u64 = 1_000_000_000;

    fn parser(layout_type: LayoutType, layout: &str, location: Option<&str>) -> TimeParser {
        TimeParser::new(layout_type, layout, location).unwrap()
    }

    fn parse(layout_type: LayoutType, layout: &str, location: &str, value: &str) -> u64 {
        parser(layout_type, layout, Some(location)).parse_str(value).unwrap()
    }

    fn fails(layout_type: LayoutType, layout: &str, location: &str, value: &str) -> String {
        parser(layout_type, layout, Some(location)).parse_str(value).unwrap_err()
    }

    fn at(now: &str) -> Zoned {
        now.parse().unwrap()
    }

    #[test]
    fn gotime_rfc3339_with_nanos_and_offset() {
        let layout = "2006-01-02T15:04:05.999999999Z07:00";
        assert_eq!(
            parse(LayoutType::Gotime, layout, "UTC", "2023-11-14T22:13:20.123456789Z"),
            1_700_000_000_123_456_789
        );
        assert_eq!(parse(LayoutType::Gotime, layout, "UTC", "2023-11-14T17:13:20.5-05:00"), 1_700_000_000_500_000_000);
        assert_eq!(
            parse(LayoutType::Gotime, layout, "America/New_York", "2023-11-15T07:43:20+09:30"),
            1_700_000_000 * NS
        );
        // Fraction omitted entirely, and more than nine digits (truncated).
        assert_eq!(parse(LayoutType::Gotime, layout, "UTC", "2023-11-14T22:13:20Z"), 1_700_000_000 * NS);
        assert_eq!(
            parse(LayoutType::Gotime, layout, "UTC", "2023-11-14T22:13:20.1234567891Z"),
            1_700_000_000_123_456_789
        );
    }

    #[test]
    fn gotime_fraction_after_seconds_without_layout_fraction() {
        let layout = "2006-01-02 15:04:05 -0700";
        assert_eq!(parse(LayoutType::Gotime, layout, "UTC", "2023-11-14 22:13:20,25 +0000"), 1_700_000_000_250_000_000);
    }

    #[test]
    fn gotime_exact_fraction_digits() {
        let layout = "Jan _2 2006 15:04:05.000";
        assert_eq!(parse(LayoutType::Gotime, layout, "UTC", "Nov 14 2023 22:13:20.007"), 1_700_000_000_007_000_000);
        assert!(fails(LayoutType::Gotime, layout, "UTC", "Nov 14 2023 22:13:20.07").contains("fractional"));
    }

    #[test]
    fn gotime_names_are_case_insensitive_and_spaces_collapse() {
        let layout = "Monday, 02-January-2006 3:04PM";
        assert_eq!(parse(LayoutType::Gotime, layout, "UTC", "TUESDAY, 14-NOVEMBER-2023 10:13PM"), 1_699_999_980 * NS);
        assert_eq!(parse(LayoutType::Gotime, "Jan _2 2006", "UTC", "Nov    5 2023"), 1_699_142_400 * NS);
    }

    #[test]
    fn gotime_zone_abbreviations() {
        let layout = "2006-01-02 15:04:05 MST";
        // UTC is always UTC; an abbreviation the location uses gets the location's offset.
        assert_eq!(
            parse(LayoutType::Gotime, layout, "America/New_York", "2023-11-14 22:13:20 UTC"),
            1_700_000_000 * NS
        );
        assert_eq!(
            parse(LayoutType::Gotime, layout, "America/New_York", "2023-11-14 17:13:20 EST"),
            1_700_000_000 * NS
        );
        assert_eq!(
            parse(LayoutType::Gotime, layout, "America/New_York", "2023-07-01 08:00:00 EDT"),
            1_688_212_800 * NS
        );
        // Unknown to the location but loadable as a zone (stanza's fallback): EST is UTC-5.
        assert_eq!(parse(LayoutType::Gotime, layout, "UTC", "2023-11-14 17:13:20 EST"), 1_700_000_000 * NS);
        assert!(fails(LayoutType::Gotime, layout, "UTC", "2023-11-14 17:13:20 PST").contains("not a known location"));
        // Zero-offset abbreviations of the location itself, and names Go does not take for zones.
        assert_eq!(parse(LayoutType::Gotime, layout, "Europe/London", "2023-11-14 22:13:20 GMT"), 1_700_000_000 * NS);
        assert_eq!(parse(LayoutType::Gotime, layout, "Europe/London", "2023-07-01 09:00:00 BST"), 1_688_198_400 * NS);
        assert!(fails(LayoutType::Gotime, layout, "UTC", "2023-11-14 22:13:20 Z").contains("time zone name"));
    }

    #[test]
    fn gotime_literal_text_must_match() {
        let layout = "2006-01-02 [15:04:05]";
        assert_eq!(parse(LayoutType::Gotime, layout, "UTC", "2023-11-14 [22:13:20]"), 1_700_000_000 * NS);
        assert!(fails(LayoutType::Gotime, layout, "UTC", "2023-11-14 (22:13:20)").contains("expected"));
    }

    #[test]
    fn gotime_day_of_year() {
        assert_eq!(parse(LayoutType::Gotime, "2006.002", "UTC", "2024.060"), 1_709_164_800 * NS);
        assert!(fails(LayoutType::Gotime, "2006.002", "UTC", "2023.366").contains("day of year"));
    }

    #[test]
    fn strptime_local_time_in_locations() {
        let layout = "%Y-%m-%d %H:%M:%S";
        assert_eq!(parse(LayoutType::Strptime, layout, "UTC", "2023-11-14 22:13:20"), 1_700_000_000 * NS);
        // EST (UTC-5) in November, EDT (UTC-4) in July.
        assert_eq!(parse(LayoutType::Strptime, layout, "America/New_York", "2023-11-14 17:13:20"), 1_700_000_000 * NS);
        assert_eq!(parse(LayoutType::Strptime, layout, "America/New_York", "2023-07-01 08:00:00"), 1_688_212_800 * NS);
        // A time in the spring-forward gap resolves forward, like jiff's compatible mode.
        assert_eq!(parse(LayoutType::Strptime, layout, "America/New_York", "2023-03-12 02:30:00"), 1_678_606_200 * NS);
    }

    #[test]
    fn strptime_access_log() {
        let layout = "%d/%b/%Y:%H:%M:%S %z";
        assert_eq!(parse(LayoutType::Strptime, layout, "UTC", "10/Oct/2000:13:55:36 -0700"), 971_211_336 * NS);
        assert_eq!(parse(LayoutType::Strptime, layout, "Asia/Tokyo", "14/Nov/2023:22:13:20 +0000"), 1_700_000_000 * NS);
        assert_eq!(parse(LayoutType::Strptime, layout, "UTC", "14/Nov/2023:22:13:20 Z"), 1_700_000_000 * NS);
    }

    #[test]
    fn strptime_syslog_without_year() {
        let p = parser(LayoutType::Strptime, "%b %e %H:%M:%S", Some("UTC"));
        // Same year as now when not more than seven days ahead.
        let now = at("2024-03-10T12:00:00+00:00[UTC]");
        assert_eq!(p.parse_str_at("Mar  9 10:00:00", Some(&now)).unwrap(), 1_709_978_400 * NS);
        assert_eq!(p.parse_str_at("Mar 17 12:00:00", Some(&now)).unwrap(), 1_710_676_800 * NS);
        // More than seven days ahead: last year.
        assert_eq!(p.parse_str_at("Mar 17 12:00:01", Some(&now)).unwrap(), 1_679_054_401 * NS);
        // Near new year: December lines read in early January belong to the previous year.
        let now = at("2024-01-02T00:00:00+00:00[UTC]");
        assert_eq!(p.parse_str_at("Dec 31 23:59:59", Some(&now)).unwrap(), 1_704_067_199 * NS);
        // Year-less dates are read in year 0 (a leap year), so February 29 is accepted and rolls over like Go.
        let now = at("2023-03-05T00:00:00+00:00[UTC]");
        assert_eq!(p.parse_str_at("Feb 29 00:00:00", Some(&now)).unwrap(), 1_677_628_800 * NS);
    }

    #[test]
    fn strptime_syslog_year_relative_to_real_now() {
        let p = parser(LayoutType::Strptime, "%b %e %H:%M:%S", Some("UTC"));
        let now = Zoned::now().with_time_zone(TimeZone::UTC);
        let this_year = |month: i8, day: i8| jiff::civil::date(now.year(), month, day).at(0, 0, 0, 0);
        for (value, month, day) in [("Jan  1 00:00:00", 1, 1), ("Dec 31 00:00:00", 12, 31)] {
            let candidate = this_year(month, day).to_zoned(TimeZone::UTC).unwrap();
            let limit = now.checked_add(7.days()).unwrap();
            let expected = if candidate > limit { candidate.checked_sub(1.year()).unwrap() } else { candidate };
            let got = p.parse_str(value).unwrap();
            assert_eq!(got, u64::try_from(expected.timestamp().as_nanosecond()).unwrap(), "{value}");
        }
    }

    #[test]
    fn strptime_fractions() {
        let base = 1_700_000_000 * NS;
        let p = parser(LayoutType::Strptime, "%Y-%m-%dT%H:%M:%S.%LZ", None);
        assert_eq!(p.parse_str("2023-11-14T22:13:20.123Z").unwrap(), base + 123_000_000);
        assert_eq!(
            parse(LayoutType::Strptime, "%H:%M:%S,%f %F", "UTC", "22:13:20,123456 2023-11-14"),
            base + 123_456_000
        );
        assert_eq!(parse(LayoutType::Strptime, "%F %T.%s", "UTC", "2023-11-14 22:13:20.123456789"), base + 123_456_789);
        // The fraction is optional, as with Go's .999 fields.
        assert_eq!(parse(LayoutType::Strptime, "%F %T.%s", "UTC", "2023-11-14 22:13:20"), base);
    }

    #[test]
    fn strptime_twelve_hour_clock() {
        let layout = "%Y-%m-%d %I:%M:%S %p";
        assert_eq!(parse(LayoutType::Strptime, layout, "UTC", "2023-11-14 10:13:20 PM"), 1_700_000_000 * NS);
        assert_eq!(parse(LayoutType::Strptime, layout, "UTC", "2023-11-14 12:00:00 AM"), 1_699_920_000 * NS);
        assert_eq!(parse(LayoutType::Strptime, layout, "UTC", "2023-11-14 12:00:00 PM"), 1_699_963_200 * NS);
        assert!(fails(LayoutType::Strptime, layout, "UTC", "2023-11-14 10:13:20 pm").contains("AM/PM"));
        assert_eq!(parse(LayoutType::Strptime, "%F %r", "UTC", "2023-11-14 10:13:20 pm"), 1_700_000_000 * NS);
    }

    #[test]
    fn strptime_two_digit_year() {
        assert_eq!(parse(LayoutType::Strptime, "%y%m%d", "UTC", "231114"), 1_699_920_000 * NS);
        assert_eq!(parse(LayoutType::Strptime, "%y-%m-%d", "UTC", "68-01-01"), 3_092_601_600 * NS);
        assert_eq!(parse(LayoutType::Strptime, "%y-%m-%d", "UTC", "70-01-02"), 86_400 * NS);
        assert!(fails(LayoutType::Strptime, "%y-%m-%d", "UTC", "69-07-20").contains("before 1970"));
    }

    #[test]
    fn strptime_literals_are_never_layout_elements() {
        // "Jan", "2006" and "15" here are plain text, not month/year/hour fields.
        let layout = "Jan 2006 %Y-%m-%d 15";
        assert_eq!(parse(LayoutType::Strptime, layout, "UTC", "Jan 2006 2023-11-14 15"), 1_699_920_000 * NS);
        assert!(fails(LayoutType::Strptime, layout, "UTC", "Feb 1999 2023-11-14 15").contains("expected"));
        assert_eq!(parse(LayoutType::Strptime, "100%% %F", "UTC", "100% 2023-11-14"), 1_699_920_000 * NS);
    }

    #[test]
    fn strptime_zone_directives() {
        let base = 1_700_000_000 * NS;
        assert_eq!(parse(LayoutType::Strptime, "%F %T %j", "UTC", "2023-11-14 23:43:20 +01:30"), base);
        assert_eq!(parse(LayoutType::Strptime, "%F %T %i", "UTC", "2023-11-14 20:13:20 -02"), base);
        assert_eq!(parse(LayoutType::Strptime, "%F %T %k", "UTC", "2023-11-14 22:13:30 +00:00:10"), base);
        assert_eq!(parse(LayoutType::Strptime, "%F %T %w", "UTC", "2023-11-14 22:13:30 +000010"), base);
        assert_eq!(parse(LayoutType::Strptime, "%a %b %e %H:%M:%S %Z %Y", "UTC", "Tue Nov 14 17:13:20 EST 2023"), base);
    }

    #[test]
    fn strptime_composite_directives() {
        assert_eq!(parse(LayoutType::Strptime, "%c", "UTC", "Tue Nov 14 22:13:20 2023"), 1_700_000_000 * NS);
        assert_eq!(parse(LayoutType::Strptime, "%D %R", "UTC", "11/14/2023 22:13"), 1_699_999_980 * NS);
        assert_eq!(parse(LayoutType::Strptime, "%x %X", "UTC", "11/14/2023 22:13:20"), 1_700_000_000 * NS);
        assert_eq!(parse(LayoutType::Strptime, "%B %g, %Y", "UTC", "November 5, 2023"), 1_699_142_400 * NS);
        assert_eq!(parse(LayoutType::Strptime, "%Y%o%d", "UTC", "2023_1105"), 1_699_142_400 * NS);
        assert_eq!(parse(LayoutType::Strptime, "%Y/%q/%d %l:%M", "UTC", "2023/11/05 9:05"), 1_699_175_100 * NS);
    }

    #[test]
    fn epoch_layouts_with_strings_and_numbers() {
        let p = |layout: &str| parser(LayoutType::Epoch, layout, None);
        assert_eq!(p("s").parse_str("1700000000").unwrap(), 1_700_000_000 * NS);
        assert_eq!(p("s").parse_i64(1_700_000_000).unwrap(), 1_700_000_000 * NS);
        assert_eq!(p("s").parse_f64(1_700_000_000.9).unwrap(), 1_700_000_000 * NS);
        assert_eq!(p("ms").parse_str("1700000000123").unwrap(), 1_700_000_000_123_000_000);
        assert_eq!(p("ms").parse_i64(1_700_000_000_123).unwrap(), 1_700_000_000_123_000_000);
        assert_eq!(p("ms").parse_f64(1_700_000_000_123.0).unwrap(), 1_700_000_000_123_000_000);
        assert_eq!(p("us").parse_str("1700000000123456").unwrap(), 1_700_000_000_123_456_000);
        assert_eq!(p("us").parse_i64(1_700_000_000_123_456).unwrap(), 1_700_000_000_123_456_000);
        assert_eq!(p("ns").parse_str("1700000000123456789").unwrap(), 1_700_000_000_123_456_789);
        assert_eq!(p("ns").parse_i64(1_700_000_000_123_456_789).unwrap(), 1_700_000_000_123_456_789);
        assert_eq!(p("s.ms").parse_str("1700000000.123").unwrap(), 1_700_000_000_123_000_000);
        assert_eq!(p("s.ms").parse_f64(1_700_000_000.123).unwrap(), 1_700_000_000_123_000_000);
        assert_eq!(p("s.ms").parse_i64(1_700_000_000).unwrap(), 1_700_000_000 * NS);
        assert_eq!(p("s.us").parse_str("1700000000.123456").unwrap(), 1_700_000_000_123_456_000);
        assert_eq!(p("s.us").parse_f64(1_700_000_000.123456).unwrap(), 1_700_000_000_123_456_000);
        assert_eq!(p("s.ns").parse_str("1700000000.123456789").unwrap(), 1_700_000_000_123_456_789);
        // A float keeps only about 0.2µs of precision at this magnitude.
        let from_float = p("s.ns").parse_f64(1_700_000_000.123_456_7).unwrap();
        assert!(from_float.abs_diff(1_700_000_000_123_456_789) < 1_000);
        // As in stanza, the fraction counts units of the layout, whatever its number of digits.
        assert_eq!(p("s.ms").parse_str("1700000000.5").unwrap(), 1_700_000_000_005_000_000);
    }

    #[test]
    fn epoch_rejects_bad_values() {
        let p = |layout: &str| parser(LayoutType::Epoch, layout, None);
        assert!(p("s").parse_str("-1").unwrap_err().contains("before 1970"));
        assert!(p("s").parse_i64(-1).unwrap_err().contains("before 1970"));
        assert!(p("s").parse_str("99999999999999999999").unwrap_err().contains("invalid value"));
        assert!(p("s").parse_i64(i64::MAX).unwrap_err().contains("future"));
        assert!(p("s").parse_str("1700000000.5").is_err());
        assert!(p("s.ms").parse_str("1700000000").is_err());
        assert!(p("s.ms").parse_str("1.2.3").is_err());
        assert!(p("ms").parse_f64(f64::NAN).is_err());
        assert!(p("s.ns").parse_f64(f64::INFINITY).is_err());
        assert!(p("ns").parse_f64(1e300).is_err());
        assert!(p("s").parse_str("").is_err());
    }

    #[test]
    fn numbers_need_an_epoch_layout() {
        let p = parser(LayoutType::Strptime, "%F", None);
        assert!(p.parse_i64(1).is_err());
        assert!(p.parse_f64(1.0).is_err());
    }

    #[test]
    fn values_that_do_not_match() {
        let layout = "%Y-%m-%d %H:%M:%S";
        assert!(fails(LayoutType::Strptime, layout, "UTC", "not a timestamp").contains("expected 4-digit year"));
        assert!(fails(LayoutType::Strptime, layout, "UTC", "2023-13-01 00:00:00").contains("month out of range"));
        assert!(fails(LayoutType::Strptime, layout, "UTC", "2023-02-29 00:00:00").contains("day out of range"));
        assert!(fails(LayoutType::Strptime, layout, "UTC", "2023-11-14 24:00:00").contains("hour out of range"));
        assert!(fails(LayoutType::Strptime, layout, "UTC", "2023-11-14 22:13:20 trailing").contains("extra text"));
        assert!(fails(LayoutType::Strptime, layout, "UTC", "1969-12-31 23:59:59").contains("before 1970"));
        assert!(fails(LayoutType::Strptime, layout, "UTC", "").contains("expected"));
        let long = "x".repeat(500);
        let message = fails(LayoutType::Strptime, layout, "UTC", &long);
        assert!(message.len() < 250, "{message}");
    }

    #[test]
    fn invalid_configurations() {
        let err = TimeParser::new(LayoutType::Strptime, "%Y-%Q", None).unwrap_err();
        assert!(err.contains("%Q"), "{err}");
        let err = TimeParser::new(LayoutType::Strptime, "%H:%M:%S%L", None).unwrap_err();
        assert!(err.contains("%L"), "{err}");
        let err = TimeParser::new(LayoutType::Epoch, "minutes", None).unwrap_err();
        assert!(err.contains("minutes"), "{err}");
        let err = TimeParser::new(LayoutType::Gotime, "2006", Some("Mars/Olympus_Mons")).unwrap_err();
        assert!(err.contains("Mars/Olympus_Mons"), "{err}");
        assert!(TimeParser::new(LayoutType::Gotime, "", None).is_err());
        assert!(!err.contains('\n'));
    }

    #[test]
    fn default_location_follows_stanza() {
        // A trailing literal Z means UTC when no location is configured.
        let p = parser(LayoutType::Gotime, "2006-01-02T15:04:05Z", None);
        assert_eq!(p.parse_str("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000 * NS);
        assert!(format!("{p:?}").contains("UTC"));
        let p = parser(LayoutType::Strptime, "%F", Some("Local"));
        assert!(format!("{p:?}").contains("Local"));
    }

    #[test]
    fn parsers_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TimeParser>();
        let p = parser(LayoutType::Strptime, "%F %T", Some("Europe/London"));
        std::thread::scope(|scope| {
            scope.spawn(|| assert_eq!(p.parse_str("2023-11-14 22:13:20").unwrap(), 1_700_000_000 * NS));
            scope.spawn(|| assert_eq!(p.parse_str("2023-07-01 09:00:00").unwrap(), 1_688_198_400 * NS));
        });
    }

    #[test]
    fn serde_layout_type_names() {
        #[derive(serde::Deserialize)]
        struct Config {
            layout_type: LayoutType,
        }
        let parse = |s: &str| -> LayoutType {
            let de = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s);
            let layout_type = <LayoutType as serde::Deserialize>::deserialize(de).unwrap();
            Config { layout_type }.layout_type
        };
        assert_eq!(parse("strptime"), LayoutType::Strptime);
        assert_eq!(parse("gotime"), LayoutType::Gotime);
        assert_eq!(parse("epoch"), LayoutType::Epoch);
        assert_eq!(LayoutType::default(), LayoutType::Strptime);
    }

    #[test]
    fn random_input_never_panics() {
        let parsers = [
            parser(LayoutType::Gotime, "2006-01-02T15:04:05.999999999Z07:00", Some("America/New_York")),
            parser(LayoutType::Gotime, "Mon Jan _2 15:04:05 MST 2006 __2 002 -07:00:00 Z070000 .000 pm", None),
            parser(LayoutType::Strptime, "%b %e %H:%M:%S", Some("Europe/London")),
            parser(LayoutType::Strptime, "%c %Z %z %i %j %k %w %p %r %D.%L", Some("UTC")),
            parser(LayoutType::Epoch, "s.ns", None),
            parser(LayoutType::Epoch, "ms", None),
        ];
        let alphabet: &[u8] = b"0123456789 .,:-+_/ZTJanMSTPMpmGMTUTCESTChSTWITA\xc3\xa9\xff\x00";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 { (r >> 8) as u8 } else { alphabet[(r >> 8) as usize % alphabet.len()] }
                })
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            for p in &parsers {
                let _ = p.parse_str(&text);
            }
        }
        for layout in ["s", "ms", "us", "ns", "s.ms", "s.us", "s.ns"] {
            let p = parser(LayoutType::Epoch, layout, None);
            for value in [i64::MIN, -1, 0, i64::MAX] {
                let _ = p.parse_i64(value);
            }
            for value in [f64::MIN, -1e300, -0.0, f64::MIN_POSITIVE, 9.3e18, 1e19, 1e300, f64::MAX, f64::NAN] {
                let _ = p.parse_f64(value);
            }
        }
        for layout in ["%", "%\n", "%é", "%%%", ".%L", "%Y%", "2006_2006__2", "Z07:0", "-07:00:0", ".0000000000"] {
            let _ = TimeParser::new(LayoutType::Strptime, layout, None).map(|p| p.parse_str("2023-11-14"));
            let _ = TimeParser::new(LayoutType::Gotime, layout, None).map(|p| p.parse_str(".1234 2023"));
        }
    }
}
