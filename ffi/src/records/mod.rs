//! The records the apps pass and get back: plain data (uniffi records and enums) mirroring the
//! core's model, with ids as UUID strings, days as `YYYY-MM-DD` strings and instants as
//! milliseconds since the Unix epoch. Inputs are checked by the core; an id or a day that does
//! not parse is a `CareError::Validation` naming the field.

mod care;
mod patient;
mod referral;
mod visit;

pub use care::*;
pub use patient::*;
pub use referral::*;
pub use visit::*;

/// A fieldless enum exported to the apps with conversions to and from its core twin.
macro_rules! mirror_enum {
    ($(#[$doc:meta])* $name:ident = $core:path { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl From<$name> for $core {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => <$core>::$variant),+
                }
            }
        }

        impl From<$core> for $name {
            fn from(v: $core) -> Self {
                match v {
                    $(<$core>::$variant => $name::$variant),+
                }
            }
        }
    };
}
pub(crate) use mirror_enum;

/// The strings of a list converted one by one.
pub(crate) fn all<A, B: From<A>>(items: impl IntoIterator<Item = A>) -> Vec<B> {
    items.into_iter().map(B::from).collect()
}
