using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace Microsoft.ML.StepDpo.Persistence;

// How a Step-DPO transform with configuration is saved and loaded with public ML.NET APIs only
// ---------------------------------------------------------------------------------------------
// ML.NET 5's own save machinery (ModelSaveContext writers, LoadableClass) is internal, so a transform
// is expressed as a TransformerChain of public built-in transforms, and its Save writes that chain:
//
//   1. Expression      config column  <- x => "<base64 of the options as JSON>"   (the state, stored in the zip)
//   2. CopyColumns     fixed internal input names <- the user's input columns
//   3. CustomMapping   internal inputs + config -> internal outputs; its factory class carries
//                      [CustomMappingFactoryAttribute(contract)] and is created with no state on load:
//                      it reads the options from the config column of each row (parsed once, cached)
//   4. CopyColumns     the user's output names <- internal outputs
//   5. DropColumns     every internal column
//
// Why: CustomMapping saves only its contract name (no state; SchemaDefinition renames are lost), the
// expression text is saved verbatim, and CopyColumns/DropColumns restore the user's column names.
// Base64 keeps the literal free of quotes and backslashes. CustomMapping also saves the full name of its factory's
// assembly, and Model.Load loads that assembly by name and registers it, so a fresh process needs no
// ComponentCatalog.RegisterAssembly call, only a reference to this library.
// Mappings run on parallel cursors: the per-row work is pure and the config cache is concurrent.

/// <summary>Builds the chain described above and holds the configuration cache.</summary>
internal static class PersistedMapping
{
    private static readonly ConcurrentDictionary<(Type, string), object> s_configs = new();

    private static readonly JsonSerializerOptions s_json = new() { IncludeFields = false };

    /// <summary>The expression text that yields the encoded configuration (ignores its input).</summary>
    public static string ConfigExpression<TConfig>(TConfig config)
    {
        string json = JsonSerializer.Serialize(config, s_json);
        return "x => \"" + Convert.ToBase64String(Encoding.UTF8.GetBytes(json)) + "\"";
    }

    /// <summary>Parses (once per distinct value and type) the configuration a row carries.</summary>
    public static TConfig ReadConfig<TConfig>(string? encoded) where TConfig : class
    {
        encoded ??= string.Empty;
        if (s_configs.TryGetValue((typeof(TConfig), encoded), out var cached))
            return (TConfig)cached;
        if (s_configs.Count > 1024)
            s_configs.Clear(); // many distinct configurations: keep the cache bounded
        string json = Encoding.UTF8.GetString(Convert.FromBase64String(encoded));
        var parsed = JsonSerializer.Deserialize<TConfig>(json, s_json)
            ?? throw new InvalidOperationException($"Invalid {typeof(TConfig).Name} configuration in the model.");
        s_configs[(typeof(TConfig), encoded)] = parsed;
        return parsed;
    }

    /// <summary>
    /// The estimator chain: config expression (anchored on <paramref name="anchorColumn"/>, a scalar column
    /// of the input), input copies, the custom mapping, output copies, and the drop of internal columns.
    /// </summary>
    public static IEstimator<ITransformer> Build<TConfig>(
        TransformsCatalog transforms,
        TConfig config,
        string configColumn,
        string anchorColumn,
        IReadOnlyList<(string Internal, string User)> inputs,
        IEstimator<ITransformer> customMapping,
        IReadOnlyList<(string Internal, string User)> outputs,
        IReadOnlyList<string> internalColumns)
    {
        IEstimator<ITransformer> chain = transforms.Expression(configColumn, ConfigExpression(config), anchorColumn);
        foreach (var (internalName, user) in inputs)
            chain = chain.Append(transforms.CopyColumns(internalName, user));
        chain = chain.Append(customMapping);
        foreach (var (internalName, user) in outputs)
            chain = chain.Append(transforms.CopyColumns(user, internalName));
        chain = chain.Append(transforms.DropColumns(internalColumns.Append(configColumn).Distinct().ToArray()));
        return chain;
    }
}
