// Renders a ChartConfig the way the design's front end does: Recharts, one series per
// data key, each coloured by its `colors` entry (var(--chart-N)) or the Nth palette colour.
import {
  Area,
  AreaChart,
  Bar,
  BarChart,
  CartesianGrid,
  Cell,
  Legend,
  Line,
  LineChart,
  Pie,
  PieChart,
  PolarAngleAxis,
  PolarGrid,
  Radar,
  RadarChart,
  RadialBar,
  RadialBarChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";
import type { ChartConfig, Row } from "./api";

const palette = (index: number) => `var(--chart-${(index % 12) + 1})`;
const colorOf = (config: ChartConfig, key: string, index: number) =>
  config.chartConfig?.[key]?.color ?? config.colors[key] ?? palette(index);
// the design's optional display fields: a series' label, axis labels, legend, tooltip, stacking
const labelOf = (config: ChartConfig, key: string) => config.chartConfig?.[key]?.label ?? key;
const xLabel = (config: ChartConfig) =>
  config.xAxisLabel ? { value: config.xAxisLabel, position: "insideBottom" as const, offset: -2 } : undefined;
const yLabel = (config: ChartConfig) =>
  config.yAxisLabel ? { value: config.yAxisLabel, angle: -90, position: "insideLeft" as const } : undefined;
const stackOf = (config: ChartConfig) => (config.stacked ? "stack" : undefined);

function tick(value: unknown): string {
  if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}/.test(value)) {
    return value.slice(5, 10);
  }
  return String(value);
}

function number(value: Row[string]): number {
  return typeof value === "number" ? value : Number(value ?? 0);
}

function Kpi({ config }: { config: ChartConfig }) {
  const key = config.dataKeys[0];
  const rows = config.chartData;
  const last = rows.length ? number(rows[rows.length - 1][key]) : null;
  const first = rows.length > 1 ? number(rows[0][key]) : null;
  const delta = last !== null && first !== null ? last - first : null;
  return (
    <div className="kpi" data-testid="kpi">
      <div className="kpi-value" style={{ color: colorOf(config, key, 0) }}>
        {last === null ? "—" : last.toLocaleString()}
      </div>
      <div className="kpi-label">{labelOf(config, key)}</div>
      {delta !== null && (
        <div className={delta >= 0 ? "kpi-delta up" : "kpi-delta down"}>
          {delta >= 0 ? "▲" : "▼"} {Math.abs(delta).toLocaleString()} over the range
        </div>
      )}
    </div>
  );
}

export function Chart({ config }: { config: ChartConfig }) {
  const { chartType, chartData: data, dataKeys: keys, xAxisKey: x } = config;
  const tooltip = config.showTooltip === false ? null : <Tooltip />;
  const legend = config.showLegend === false ? null : <Legend />;
  if (chartType === "kpi") {
    return <Kpi config={config} />;
  }
  let chart: JSX.Element;
  switch (chartType) {
    case "line":
      chart = (
        <LineChart data={data}>
          <CartesianGrid vertical={false} strokeDasharray="3 3" />
          <XAxis dataKey={x} tickFormatter={tick} minTickGap={24} label={xLabel(config)} />
          <YAxis width={56} label={yLabel(config)} />
          {tooltip}
          {legend}
          {keys.map((key, i) => (
            <Line key={key} dataKey={key} name={labelOf(config, key)} stroke={colorOf(config, key, i)} dot={false} strokeWidth={2} isAnimationActive={false} />
          ))}
        </LineChart>
      );
      break;
    case "bar":
      chart = (
        <BarChart data={data}>
          <CartesianGrid vertical={false} strokeDasharray="3 3" />
          <XAxis dataKey={x} tickFormatter={tick} minTickGap={24} label={xLabel(config)} />
          <YAxis width={56} label={yLabel(config)} />
          {tooltip}
          {legend}
          {keys.map((key, i) => (
            <Bar key={key} dataKey={key} name={labelOf(config, key)} stackId={stackOf(config)} fill={colorOf(config, key, i)} radius={4} isAnimationActive={false} />
          ))}
        </BarChart>
      );
      break;
    case "area":
      chart = (
        <AreaChart data={data}>
          <CartesianGrid vertical={false} strokeDasharray="3 3" />
          <XAxis dataKey={x} tickFormatter={tick} minTickGap={24} label={xLabel(config)} />
          <YAxis width={56} label={yLabel(config)} />
          {tooltip}
          {legend}
          {keys.map((key, i) => (
            <Area
              key={key}
              dataKey={key}
              name={labelOf(config, key)}
              stackId={stackOf(config)}
              stroke={colorOf(config, key, i)}
              fill={colorOf(config, key, i)}
              fillOpacity={0.3}
              isAnimationActive={false}
            />
          ))}
        </AreaChart>
      );
      break;
    case "pie":
      chart = (
        <PieChart>
          {tooltip}
          {legend}
          <Pie data={data} dataKey={keys[0]} nameKey={x} innerRadius="45%" isAnimationActive={false}>
            {data.map((row, i) => (
              <Cell key={String(row[x])} fill={colorOf(config, String(row[x]), i)} />
            ))}
          </Pie>
        </PieChart>
      );
      break;
    case "radar":
      chart = (
        <RadarChart data={data}>
          <PolarGrid />
          <PolarAngleAxis dataKey={x} tickFormatter={tick} />
          {tooltip}
          {legend}
          {keys.map((key, i) => (
            <Radar
              key={key}
              dataKey={key}
              name={labelOf(config, key)}
              stroke={colorOf(config, key, i)}
              fill={colorOf(config, key, i)}
              fillOpacity={0.4}
              isAnimationActive={false}
            />
          ))}
        </RadarChart>
      );
      break;
    case "radial": {
      // a gauge: each row a ring against a common scale (the largest value plus a fifth),
      // so a single value reads as a share of a circle, not a full one
      const top = Math.max(...data.map((row) => number(row[keys[0]])), 0) * 1.2 || 1;
      const last = data.length ? number(data[data.length - 1][keys[0]]) : null;
      chart = (
        <RadialBarChart
          data={data.map((row, i) => ({ ...row, fill: colorOf(config, String(row[x]), i) }))}
          innerRadius="45%"
          outerRadius="100%"
          startAngle={90}
          endAngle={-270}
        >
          <PolarAngleAxis type="number" domain={[0, top]} tick={false} />
          {tooltip}
          <RadialBar dataKey={keys[0]} background isAnimationActive={false} />
          {last !== null && (
            <text x="50%" y="50%" textAnchor="middle" dominantBaseline="middle" className="radial-value">
              {last.toLocaleString()}
            </text>
          )}
        </RadialBarChart>
      );
      break;
    }
  }
  return (
    <ResponsiveContainer width="100%" height={240}>
      {chart}
    </ResponsiveContainer>
  );
}
