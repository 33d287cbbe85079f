//! The statuses of the portal's records, as enums. The database keeps them as the same strings
//! as always (its CHECK constraints name them), JSON carries the same strings, and code compares
//! enums: a typo is a compile error, not a silent mismatch.

use serde::{Deserialize, Serialize};

macro_rules! status {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every status, in the order of its lifecycle.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string the database and JSON hold.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The status in words for people ("awaiting deposit").
            pub fn words(self) -> String {
                self.as_str().replace('_', " ")
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[cfg(feature = "server")]
        impl sea_orm::TryGetable for $name {
            fn try_get_by<I: sea_orm::ColIdx>(
                res: &sea_orm::QueryResult,
                index: I,
            ) -> Result<Self, sea_orm::TryGetError> {
                let text = String::try_get_by(res, index)?;
                $name::parse(&text).ok_or_else(|| {
                    sea_orm::TryGetError::DbErr(sea_orm::DbErr::Type(format!(
                        "{} is not a {} this version knows",
                        text,
                        stringify!($name)
                    )))
                })
            }
        }

        #[cfg(feature = "server")]
        impl From<$name> for sea_orm::Value {
            fn from(s: $name) -> Self {
                s.as_str().into()
            }
        }
    };
}

status! {
    /// Where a booking is in its life.
    BookingStatus {
        /// Held for the customer until the deposit is paid or the hold expires.
        AwaitingDeposit = "awaiting_deposit",
        Confirmed = "confirmed",
        Cancelled = "cancelled",
        Completed = "completed",
        NoShow = "no_show",
        /// The hold expired unpaid.
        Expired = "expired",
    }
}

impl BookingStatus {
    /// Holding its time: the database refuses another active booking over it.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            BookingStatus::AwaitingDeposit | BookingStatus::Confirmed
        )
    }
}

status! {
    /// One payment attempt (one hosted checkout).
    PaymentStatus {
        /// Being created at the provider.
        Creating = "creating",
        /// Waiting for the customer on the payment page.
        Open = "open",
        /// Submitted with a delayed method; the provider will say.
        Processing = "processing",
        Paid = "paid",
        Failed = "failed",
        Expired = "expired",
        Abandoned = "abandoned",
    }
}

status! {
    /// One refund of a payment.
    RefundStatus {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

status! {
    /// A job in the integration ledger.
    JobStatus {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        /// Out of attempts, or failed for good: waits for an admin.
        ManualReview = "manual_review",
        /// Closed by an admin with a note.
        Resolved = "resolved",
        Cancelled = "cancelled",
    }
}

status! {
    /// A document's content.
    DocumentStatus {
        Stored = "stored",
        /// Deleted: gone from every list; its object is being removed.
        Deleting = "deleting",
    }
}
