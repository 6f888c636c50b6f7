//! [`ErrorChain`]: an error with its sources, as an operator reads it in a log or a message.

use std::error::Error;
use std::fmt;

/// Shows an error and its sources, outermost first: `outer: inner: innermost`. A source whose
/// text the chain already holds is left out (the AWS SDK's errors, for one, repeat their
/// source's message in their own).
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(e) = source {
            let next = e.to_string();
            if !text.contains(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = e.source();
        }
        f.write_str(&text)
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn sources_follow_the_error_and_repeats_are_left_out() {
        let e = Layer("cannot connect", Some(Box::new(Layer("io error", Some(Box::new(Layer("refused", None)))))));
        assert_eq!(ErrorChain(&e).to_string(), "cannot connect: io error: refused");
        let repeating = Layer("dispatch failure: refused", Some(Box::new(Layer("refused", None))));
        assert_eq!(ErrorChain(&repeating).to_string(), "dispatch failure: refused");
        assert_eq!(ErrorChain(&Layer("alone", None)).to_string(), "alone");
    }
}
