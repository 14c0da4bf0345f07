// Step-DPO in ML.NET end to end, about 10 seconds on two CPU cores. From the repository root:
//   dotnet run --project src/Samples/QuickStart -c Release [output folder, default artifacts/quickstart]
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;

const string Model = "src/Samples/Assets/sft-arithmetic";     // the committed 0.8M-parameter Qwen2; prompt format "plain"
string output = args.Length > 0 ? args[0] : "artifacts/quickstart";
Directory.CreateDirectory(output);
string pairsPath = Path.Combine(output, "pairs.jsonl"), scorerPath = Path.Combine(output, "step-scorer.zip");
var ml = new MLContext(seed: 1);

// 1. Text: cut solutions into steps, find the first wrong step (here: by checking the arithmetic), extract the answer.
const string Question = "Ava has 18 shells. Ava gives away 8. Ava gives 2 friends 3 each. How many shells now?";
Answer[] answers =
[
    new() { prompt = Question, solution = "Let's think step by step.\nStep 1: 18-8=10.\nStep 2: 2*3=6.\nStep 3: 10-6=4.\nThe answer is 4." },
    new() { prompt = Question, solution = "Let's think step by step.\nStep 1: 18-8=10.\nStep 2: 2*3=5.\nStep 3: 10-5=5.\nThe answer is 5." },
];
var answersView = ml.Data.LoadFromEnumerable(answers);
var checkedView = ml.Transforms.SegmentSteps("Steps", "solution")
    .Append(ml.Transforms.LocateFirstError("prompt", "Steps", referenceAnswerColumnName: null))   // FirstErrorStep, StepVerdicts, ErrorEvidence
    .Append(ml.Transforms.ExtractAnswer("Extracted", "solution"))
    .Fit(answersView).Transform(answersView);
Console.WriteLine($"1. first wrong step: {string.Join(", ", checkedView.GetColumn<int>("FirstErrorStep"))} (-1: none); " +
                  $"answers: {string.Join(", ", checkedView.GetColumn<string>("Extracted"))}");

// 2. Step preferences from the model's own mistakes: sample, locate the first wrong step, rectify from "Step k:".
var problems = ml.Data.LoadFromGsm8kJsonl("src/Samples/QuickStart/problems.jsonl");       // question, answer, final_answer
using (var policy = LocalModelCompletionSource.Load(Model, PromptTemplate.Plain))
{
    var report = ml.StepDpo().BuildStepPreferences(problems, new StepPreferenceOptions
    {
        Policy = policy, ProblemColumnName = "question", AnswerColumnName = "final_answer",
        SamplesPerProblem = 4, OutputPath = pairsPath,                                        // Math-Step-DPO-10K rows; a rerun resumes
    });
    Console.WriteLine($"2. {report.Sampled} samples, {report.Wrong} wrong, {report.Located} located, {report.Pairs} step pairs");
}

// 3. Step-DPO: an ML.NET trainer whose fitted model is a step scorer, saved as an ML.NET model zip.
var trainer = ml.StepDpo().Trainers.StepDpo(new StepDpoTrainer.Options
{
    BaseModelPath = Model, Template = PromptTemplate.Plain, Beta = 0.4, LearningRate = 1e-4, Epochs = 3,
});
ml.Model.Save(trainer.Fit(ml.Data.LoadFromStepDpoJsonl(pairsPath)), null, scorerPath);
Console.WriteLine($"3. saved {scorerPath}");

// 4. In an application: load the zip and score each step: reward β·(log πθ − log πref), and the first step it doubts.
var engine = ml.Model.CreatePredictionEngine<Answer, StepScores>(ml.Model.Load(scorerPath, out _));
foreach (var answer in answers)
{
    var s = engine.Predict(answer);
    Console.WriteLine($"4. step rewards {string.Join(" ", s.StepRewards.Select(r => r.ToString("+0.000;-0.000")))}, first doubted step: {s.FirstErrorStep}");
}

class Answer { public string prompt { get; set; } = ""; public string solution { get; set; } = ""; }
class StepScores { public float[] StepRewards { get; set; } = []; public int FirstErrorStep { get; set; } }
