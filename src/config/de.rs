//! A serde `Deserializer` over [`Node`], so typed component configs are read straight
//! from the located tree and every error names the file, line and column it concerns.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::node::{Location, Node, NodeKind};

/// A config value that does not fit its type, with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub message: String,
    pub location: Option<Location>,
}

impl DeError {
    fn at(mut self, location: &Location) -> DeError {
        if self.location.is_none() {
            self.location = Some(location.clone());
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{location}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError { message: msg.to_string(), location: None }
    }
}

/// Reads a `T` from a node.
/// An optional block that is on when its key is present, even with a null value
/// (`grpc:` with nothing after it takes every default).
pub fn present_or_default<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: de::Deserializer<'de>,
    T: de::Deserialize<'de> + Default,
{
    <Option<T> as de::Deserialize>::deserialize(deserializer).map(|v| Some(v.unwrap_or_default()))
}

pub fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Node) -> Result<T, DeError> {
    T::deserialize(NodeDeserializer { node }).map_err(|e| e.at(&node.location))
}

#[derive(Clone, Copy)]
pub struct NodeDeserializer<'a> {
    pub node: &'a Node,
}

impl<'a> NodeDeserializer<'a> {
    fn scalar(&self) -> Result<&'a str, DeError> {
        match &self.node.kind {
            NodeKind::Scalar { text, .. } => Ok(text),
            _ => Err(self.invalid_type("a scalar")),
        }
    }

    fn invalid_type(&self, expected: &str) -> DeError {
        DeError {
            message: format!("expected {expected}, found {}", self.node.kind_name()),
            location: Some(self.node.location.clone()),
        }
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        let text = self.scalar()?;
        text.trim().parse::<T>().map_err(|_| DeError {
            message: format!("expected {what}, found `{text}`"),
            location: Some(self.node.location.clone()),
        })
    }

    fn parse_bool(&self) -> Result<bool, DeError> {
        match self.scalar()? {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            other => Err(DeError {
                message: format!("expected true or false, found `{other}`"),
                location: Some(self.node.location.clone()),
            }),
        }
    }
}

macro_rules! deserialize_number {
    ($method:ident, $visit:ident, $ty:ty, $what:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let value: $ty = self.parse($what)?;
            visitor.$visit(value).map_err(|e: DeError| e.at(&self.node.location))
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Scalar { text, quoted: false } => {
                if let Ok(b) = self.parse_bool() {
                    visitor.visit_bool(b)
                } else if let Ok(i) = text.parse::<i64>() {
                    visitor.visit_i64(i)
                } else if let Ok(u) = text.parse::<u64>() {
                    visitor.visit_u64(u)
                } else if let Ok(f) = text.parse::<f64>() {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_borrowed_str(text)
                }
            }
            NodeKind::Scalar { text, quoted: true } => visitor.visit_borrowed_str(text),
            NodeKind::Seq(items) => visitor.visit_seq(SeqAccess { items: items.iter() }),
            NodeKind::Map(entries) => visitor.visit_map(MapAccess { entries: entries.iter(), value: None }),
        };
        result.map_err(|e: DeError| e.at(&self.node.location))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value = self.parse_bool()?;
        visitor.visit_bool(value).map_err(|e: DeError| e.at(&self.node.location))
    }

    deserialize_number!(deserialize_i8, visit_i8, i8, "an integer");
    deserialize_number!(deserialize_i16, visit_i16, i16, "an integer");
    deserialize_number!(deserialize_i32, visit_i32, i32, "an integer");
    deserialize_number!(deserialize_i64, visit_i64, i64, "an integer");
    deserialize_number!(deserialize_u8, visit_u8, u8, "a non-negative integer");
    deserialize_number!(deserialize_u16, visit_u16, u16, "a non-negative integer");
    deserialize_number!(deserialize_u32, visit_u32, u32, "a non-negative integer");
    deserialize_number!(deserialize_u64, visit_u64, u64, "a non-negative integer");
    deserialize_number!(deserialize_f32, visit_f32, f32, "a number");
    deserialize_number!(deserialize_f64, visit_f64, f64, "a number");

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.scalar()?;
        visitor.visit_borrowed_str(text).map_err(|e: DeError| e.at(&self.node.location))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            _ => Err(self.invalid_type("nothing (null)")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self).map_err(|e: DeError| e.at(&self.node.location))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            // `include:` with nothing after it is an empty list, as upstream reads it.
            NodeKind::Null => visitor.visit_seq(SeqAccess { items: [].iter() }),
            NodeKind::Seq(items) => visitor.visit_seq(SeqAccess { items: items.iter() }),
            _ => return Err(self.invalid_type("a list")),
        };
        result.map_err(|e: DeError| e.at(&self.node.location))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            // `debug:` with nothing after it is the component's default config.
            NodeKind::Null => visitor.visit_map(MapAccess { entries: [].iter(), value: None }),
            NodeKind::Map(entries) => visitor.visit_map(MapAccess { entries: entries.iter(), value: None }),
            _ => return Err(self.invalid_type("a map")),
        };
        result.map_err(|e: DeError| e.at(&self.node.location))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Scalar { text, .. } => visitor.visit_enum(text.as_str().into_deserializer()),
            NodeKind::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                visitor.visit_enum(EnumAccess { key, value })
            }
            _ => return Err(self.invalid_type("one of the listed names")),
        };
        result.map_err(|e: DeError| e.at(&self.node.location))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqAccess<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed.deserialize(NodeDeserializer { node }).map(Some).map_err(|e| e.at(&node.location)),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccess<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(NodeDeserializer { node: key }).map(Some).map_err(|e| e.at(&key.location))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(node) = self.value.take() else {
            return Err(de::Error::custom("a map value was asked for before its key"));
        };
        seed.deserialize(NodeDeserializer { node }).map_err(|e| e.at(&node.location))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumAccess<'a> {
    key: &'a Node,
    value: &'a Node,
}

impl<'de> de::EnumAccess<'de> for EnumAccess<'de> {
    type Error = DeError;
    type Variant = NodeDeserializer<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant), DeError> {
        let variant = seed.deserialize(NodeDeserializer { node: self.key }).map_err(|e| e.at(&self.key.location))?;
        Ok((variant, NodeDeserializer { node: self.value }))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDeserializer<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::parse;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        size: u32,
        #[serde(default)]
        enabled: bool,
        #[serde(default)]
        names: Vec<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        inner: Inner,
        name: Option<String>,
    }

    #[test]
    fn reads_typed_values() {
        let node = parse("c.yaml", "inner:\n  size: 10\n  enabled: true\n  names: [a, b]\nname: x\n").unwrap();
        let outer: Outer = from_node(&node).unwrap();
        assert_eq!(outer.inner.size, 10);
        assert!(outer.inner.enabled);
        assert_eq!(outer.inner.names, vec!["a", "b"]);
        assert_eq!(outer.name.as_deref(), Some("x"));
    }

    #[test]
    fn unknown_field_points_at_the_key() {
        let node = parse("c.yaml", "inner:\n  size: 10\n  sise: 3\n").unwrap();
        let err = from_node::<Outer>(&node).unwrap_err();
        assert_eq!(err.location.as_ref().map(|l| (l.line, l.column)), Some((3, 3)));
        assert!(err.message.contains("unknown field `sise`"), "{err}");
        assert!(err.message.contains("`size`"), "{err}");
    }

    #[test]
    fn bad_value_points_at_the_value() {
        let node = parse("c.yaml", "inner:\n  size: lots\n").unwrap();
        let err = from_node::<Outer>(&node).unwrap_err();
        assert_eq!(err.to_string(), "c.yaml:2:9: expected a non-negative integer, found `lots`");
    }

    #[test]
    fn null_struct_is_default() {
        let node = parse("c.yaml", "inner:\n").unwrap();
        let outer: Outer = from_node(&node).unwrap();
        assert_eq!(outer.inner, Inner { size: 0, enabled: false, names: vec![] });
    }

    #[test]
    fn missing_field_points_at_the_map() {
        let node = parse("c.yaml", "name: x\n").unwrap();
        let err = from_node::<Outer>(&node).unwrap_err();
        assert!(err.to_string().starts_with("c.yaml:1:1: missing field `inner`"), "{err}");
    }
}
