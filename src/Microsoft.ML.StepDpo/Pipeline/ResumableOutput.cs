using System.Text;
using System.Text.Json;
using Microsoft.ML.StepDpo.Data;

namespace Microsoft.ML.StepDpo.Pipeline;

/// <summary>
/// Append-only JSONL outputs plus a progress record that make a run killed at any moment (kill -9) resumable with no
/// duplicated and no lost rows.
/// </summary>
/// <remarks>
/// A problem is committed in this order, under one lock: its rows are appended to the outputs and flushed to disk,
/// then one progress line is appended and flushed: {"id", "out", "answers", counts} where "out"/"answers" are the
/// outputs' lengths in bytes after its rows. So a kill leaves every output as (the rows of the committed problems)
/// + (a prefix of the rows of at most the problem being committed), and the progress file as complete lines + maybe
/// one torn line. On open, the torn line is cut off, each output is cut back to the length the last complete progress
/// line recorded (dropping rows of the uncommitted problem), and the committed problems are skipped.
/// </remarks>
internal sealed class ResumableOutput : IDisposable
{
    private sealed record Entry(string Id, long Out, long Answers, ProblemCounts Counts);

    private readonly object _lock = new();
    private readonly FileStream _out;
    private readonly FileStream? _answers;
    private readonly FileStream _progress;
    private readonly HashSet<string> _done = new(StringComparer.Ordinal);
    private readonly OutputLock _lockFile;

    public ResumableOutput(string outputPath, string? answerPairsPath)
    {
        ProgressPath = outputPath + ".progress.jsonl";
        foreach (var path in new[] { outputPath, answerPairsPath, ProgressPath })
            if (path is not null && Path.GetDirectoryName(Path.GetFullPath(path)) is { Length: > 0 } dir) Directory.CreateDirectory(dir);

        // One writer per output; the lock is released on Dispose or when the process dies.
        _lockFile = OutputLock.ForFile(outputPath, "The step-preference output");
        try
        {
            // Without a progress file, an existing non-empty output was not written by this protocol: never empty it.
            if (!File.Exists(ProgressPath))
                foreach (var path in new[] { outputPath, answerPairsPath })
                    if (path is not null && File.Exists(path) && new FileInfo(path).Length > 0)
                        throw new InvalidOperationException(
                            $"'{Path.GetFullPath(path)}' already exists and has no progress file ('{Path.GetFileName(ProgressPath)}') next to it, so it was not written by an interrupted run of this builder; " +
                            "delete it or choose another output path.");
            _progress = new FileStream(ProgressPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
            var entries = ReadEntries(_progress, out long goodLength);
            _progress.SetLength(goodLength);
            _progress.Seek(0, SeekOrigin.End);

            var last = entries.Count > 0 ? entries[^1] : null;
            _out = OpenAt(outputPath, last?.Out ?? 0);
            _answers = answerPairsPath is null ? null : OpenAt(answerPairsPath, last?.Answers ?? 0);
            foreach (var e in entries)
            {
                _done.Add(e.Id);
                Totals = Totals.Add(e.Counts);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string ProgressPath { get; }

    /// <summary>Counts over every committed problem.</summary>
    public StepPreferenceReport Totals { get; private set; } = new();

    /// <summary>The ids of the committed problems.</summary>
    public IReadOnlyList<string> CommittedIds
    {
        get { lock (_lock) return _done.ToList(); }
    }

    public bool IsDone(string id)
    {
        lock (_lock) return _done.Contains(id);
    }

    /// <summary>Appends a problem's rows, then its progress line, each flushed to disk.</summary>
    public StepPreferenceReport Commit(string id, IReadOnlyList<StepPreferenceRow> pairs, IReadOnlyList<StepPreferenceRow> answerPairs, ProblemCounts counts)
    {
        lock (_lock)
        {
            if (!_done.Add(id)) return Totals; // the same id twice in the input: first one wins
            Append(_out, pairs);
            if (_answers is not null) Append(_answers, answerPairs);
            var line = JsonSerializer.Serialize(new Entry(id, _out.Length, _answers?.Length ?? 0, counts)) + "\n";
            _progress.Write(Encoding.UTF8.GetBytes(line));
            _progress.Flush(flushToDisk: true);
            Totals = Totals.Add(counts);
            return Totals;
        }
    }

    private static void Append(FileStream stream, IReadOnlyList<StepPreferenceRow> rows)
    {
        foreach (var row in rows) stream.Write(row.ToJsonLine());
        stream.Flush(flushToDisk: true);
    }

    private static FileStream OpenAt(string path, long length)
    {
        var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        if (stream.Length < length)
        {
            stream.Dispose();
            throw new InvalidOperationException(
                $"'{path}' is shorter ({new FileInfo(path).Length} bytes) than its progress record says ({length}); it was changed outside this run. " +
                "Delete the output and its .progress.jsonl to start over.");
        }
        stream.SetLength(length);
        stream.Seek(0, SeekOrigin.End);
        return stream;
    }

    private static List<Entry> ReadEntries(FileStream progress, out long goodLength)
    {
        var entries = new List<Entry>();
        goodLength = 0;
        progress.Seek(0, SeekOrigin.Begin);
        var bytes = new byte[progress.Length];
        progress.ReadExactly(bytes);
        int start = 0;
        while (start < bytes.Length)
        {
            int nl = Array.IndexOf(bytes, (byte)'\n', start);
            if (nl < 0) break; // a torn last line
            Entry? entry;
            try
            {
                entry = JsonSerializer.Deserialize<Entry>(bytes.AsSpan(start, nl - start));
            }
            catch (JsonException)
            {
                break;
            }
            if (entry is null || entry.Counts is null) break;
            entries.Add(entry);
            start = nl + 1;
            goodLength = start;
        }
        return entries;
    }

    public void Dispose()
    {
        _out?.Dispose();
        _answers?.Dispose();
        _progress?.Dispose();
        _lockFile.Dispose();
    }
}
