// Tool sets and the JSON Schema subset that tool definitions use in practice: type (one or a
// list), enum, const, required, properties, additionalProperties, items, anyOf and oneOf.
// Problems are phrased for the model, which gets them back as the call's result.
#include <cmath>
#include <string>

#include "python_json.hpp"
#include "warren/toolcall/toolcall.hpp"

namespace warren::toolcall {

namespace {

// Values nested deeper than this are not checked further: schemas rarely go past a few levels,
// and the arguments come from a model, so the walk must stay bounded.
constexpr int kMaxDepth = 64;

std::string json_type(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "integer";
    case Json::value_t::number_float:
      return "number";
    case Json::value_t::string:
      return "string";
    case Json::value_t::array:
      return "array";
    default:
      return "object";
  }
}

bool has_type(const Json& v, const std::string& type) {
  if (type == "number") return v.is_number();
  if (type == "integer") {
    if (v.is_number_integer()) return true;
    if (!v.is_number_float()) return false;
    const double d = v.get<double>();
    return std::isfinite(d) && std::floor(d) == d;
  }
  return json_type(v) == type;
}

std::string where(const std::string& path) {
  return path.empty() ? "arguments" : "'" + path + "'";
}

std::string short_json(const Json& v) {
  std::string s = detail::python_json(v);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

void check(const Json& v, const Json& schema, const std::string& path, int depth,
           std::vector<std::string>& problems) {
  if (!schema.is_object() || depth > kMaxDepth) return;

  if (schema.contains("type")) {
    const Json& t = schema["type"];
    bool ok = false;
    std::string expected;
    if (t.is_string()) {
      ok = has_type(v, t.get<std::string>());
      expected = t.get<std::string>();
    } else if (t.is_array()) {
      for (const Json& one : t) {
        if (!one.is_string()) continue;
        ok = ok || has_type(v, one.get<std::string>());
        expected += (expected.empty() ? "" : " or ") + one.get<std::string>();
      }
    } else {
      ok = true;
    }
    if (!ok) {
      problems.push_back(where(path) + ": expected " + expected + ", got " + json_type(v));
      return;  // the other keywords would only repeat the mismatch
    }
  }
  if (schema.contains("enum") && schema["enum"].is_array()) {
    bool found = false;
    for (const Json& option : schema["enum"]) found = found || option == v;
    if (!found)
      problems.push_back(where(path) + ": must be one of " + short_json(schema["enum"]) + ", got " +
                         short_json(v));
  }
  if (schema.contains("const") && schema["const"] != v)
    problems.push_back(where(path) + ": must be " + short_json(schema["const"]));

  for (const char* combinator : {"anyOf", "oneOf"}) {
    if (!schema.contains(combinator) || !schema[combinator].is_array()) continue;
    bool any = false;
    for (const Json& option : schema[combinator]) {
      std::vector<std::string> scratch;
      check(v, option, path, depth + 1, scratch);
      any = any || scratch.empty();
    }
    if (!any) problems.push_back(where(path) + ": matches none of the allowed forms");
  }

  if (v.is_object()) {
    const Json* properties = schema.contains("properties") && schema["properties"].is_object()
                                 ? &schema["properties"]
                                 : nullptr;
    if (schema.contains("required") && schema["required"].is_array()) {
      for (const Json& name : schema["required"]) {
        if (name.is_string() && !v.contains(name.get<std::string>()))
          problems.push_back((path.empty() ? std::string("missing required parameter '")
                                           : where(path) + ": missing required field '") +
                             name.get<std::string>() + "'");
      }
    }
    const Json* additional =
        schema.contains("additionalProperties") ? &schema["additionalProperties"] : nullptr;
    for (const auto& [key, value] : v.items()) {
      const std::string child = path.empty() ? key : path + "." + key;
      if (properties && properties->contains(key)) {
        check(value, (*properties)[key], child, depth + 1, problems);
      } else if (additional && additional->is_boolean() && !additional->get<bool>()) {
        problems.push_back("'" + child + "': unknown " +
                           (path.empty() ? std::string("parameter") : std::string("field")));
      } else if (additional && additional->is_object()) {
        check(value, *additional, child, depth + 1, problems);
      }
    }
  } else if (v.is_array() && schema.contains("items") && schema["items"].is_object()) {
    for (std::size_t i = 0; i < v.size(); ++i)
      check(v[i], schema["items"], path + "[" + std::to_string(i) + "]", depth + 1, problems);
  }
}

}  // namespace

Result<ToolSet> ToolSet::from_json(const Json& tools) {
  if (!tools.is_array())
    return tl::unexpected(Error{"tools: expected an array of tool definitions"});
  if (detail::nests_deeper_than(tools, detail::kMaxJsonDepth))
    return tl::unexpected(Error{"tools: JSON nested deeper than " +
                                std::to_string(detail::kMaxJsonDepth) + " levels"});
  ToolSet set;
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const Json& t = tools[i];
    const Json& fn = t.is_object() && t.contains("function") ? t["function"] : t;
    if (!fn.is_object() || !fn.contains("name") || !fn["name"].is_string())
      return tl::unexpected(Error{"tools[" + std::to_string(i) +
                                  "]: expected {type: \"function\", function: "
                                  "{name, description, parameters}}"});
    Json parameters = fn.contains("parameters") ? fn["parameters"] : Json::object();
    set.tools_.emplace_back(fn["name"].get<std::string>(), std::move(parameters));
  }
  return set;
}

const Json* ToolSet::schema_for(std::string_view name) const {
  for (const auto& [tool, parameters] : tools_)
    if (tool == name) return &parameters;
  return nullptr;
}

bool ToolSet::contains(std::string_view name) const {
  return schema_for(name) != nullptr;
}

std::vector<std::string> ToolSet::check_arguments(std::string_view name,
                                                  const Json& arguments) const {
  std::vector<std::string> problems;
  const Json* schema = schema_for(name);
  if (!schema) {
    std::string known;
    for (const auto& [tool, parameters] : tools_) known += (known.empty() ? "" : ", ") + tool;
    problems.push_back("unknown tool '" + std::string(name) + "' (available: " + known + ")");
    return problems;
  }
  check(arguments, *schema, "", 0, problems);
  return problems;
}

}  // namespace warren::toolcall
