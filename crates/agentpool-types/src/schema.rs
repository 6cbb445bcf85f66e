//! Building blocks of the OpenAPI schemas whose limits come from this workspace's constants,
//! so the document and the validation read the same numbers (the derive accepts literals only).

use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

/// An optional integer from `lo` to `hi`: `null` or absent is allowed.
pub fn optional_int(lo: i64, hi: i64, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(lo))
        .maximum(Some(hi))
        .description(Some(description))
}

/// An integer from `lo` to `hi`.
pub fn int(lo: i64, hi: i64, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(lo))
        .maximum(Some(hi))
        .description(Some(description))
}

/// A string of `min` to `max` characters; `null` allowed when `optional`.
pub fn text(min: usize, max: usize, optional: bool, description: &str) -> ObjectBuilder {
    let kind = if optional {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .min_length(Some(min))
        .max_length(Some(max))
        .description(Some(description))
}

/// An optional JSON object that requests carry and answers never do (`writeOnly`): secrets.
pub fn write_only_object(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .write_only(true)
        .description(Some(description))
}
