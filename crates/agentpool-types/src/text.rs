//! `text_enum!`: the text form of the plain enums that are stored or sent as words.

/// Gives a plain enum its text form: `ALL`, `as_str`, `Display` and `FromStr`. Used for every
/// state, kind and policy stored as text, in the registry, the store and on the command line.
#[macro_export]
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => {
                        let known: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        Err(format!("unknown {} {other:?}; expected one of {}", stringify!($name), known.join(", ")))
                    }
                }
            }
        }
    };
}
